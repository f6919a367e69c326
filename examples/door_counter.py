"""Count who comes through a door, from a camera, a video file or a stream, in a few lines.

    python examples/door_counter.py 0 --db people.db               # camera 0
    python examples/door_counter.py door.mp4 --db people.db

Each person is counted once per visit (a track), by the name the track settles on.
"""

import argparse
from collections import Counter

from faceprint import Gallery
from faceprint.video import watch

parser = argparse.ArgumentParser()
parser.add_argument("source", help="video file, camera index or stream URL")
parser.add_argument("--db", help="gallery database (default: faceprint's)")
args = parser.parse_args()

visits = Counter()
with Gallery(args.db) as gallery:
    run = watch(args.source, gallery)
    for result in run:
        for event in result.events:
            if event.kind == "leave":
                visits[event.name or "unknown"] += 1
                print(f"{event.time:7.1f} s  {event.name or 'someone unknown'} left")
    for event in run.final_events:  # still in view when the video ended
        visits[event.name or "unknown"] += 1

for name, n in visits.most_common():
    print(f"{name}: {n} visit(s)")
