"""Detectors against each other on real footage: the faces each finds in frames of the crowd clip.

    python benchmarks/crowd_detection.py   # -> benchmarks/results/crowd-detection.json

LFW's photos are centred portraits, where every detector here finds the face; real footage has
many small, turned and blurred faces. ``crowd-1080p.mp4`` (people walking towards the camera,
1920x1080) has no box truth, so the detectors are compared with each other: every ``--every``-th
frame goes through each, a face counts as found by both when the boxes overlap (IoU >= 0.3), and
the faces only one found are listed with their width, so what a detector loses can be looked at.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "datasets" / "video" / "crowd-1080p.mp4")
    ap.add_argument("--detectors", nargs=2, default=["blazeface-mtcnn", "blazeface-short-mtcnn"])
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "crowd-detection.json")
    args = ap.parse_args()
    os.environ.setdefault("FACEPRINT_THREADS", "1")
    from faceprint.boxes import overlap
    from faceprint.detection import get_detector
    from faceprint.video import Source

    detectors = [get_detector(n) for n in args.detectors]
    found = {n: 0 for n in args.detectors}
    cpu = {n: 0.0 for n in args.detectors}
    only: dict[str, list] = {n: [] for n in args.detectors}
    both = frames = 0
    for frame in Source(args.video, live=False).frames():
        if frame.index % args.every:
            continue
        frames += 1
        faces = []
        for name, detector in zip(args.detectors, detectors):
            start = time.process_time()
            faces.append(detector.detect(frame.image))
            cpu[name] += time.process_time() - start
            found[name] += len(faces[-1])
        a, b = faces
        close = (overlap(np.array([f.box for f in a]), np.array([f.box for f in b])) >= 0.3 if a and b
                 else np.zeros((len(a), len(b)), bool))
        matched = [close.any(axis=1), close.any(axis=0)]
        both += int(matched[0].sum())
        for name, fs, m in zip(args.detectors, faces, matched):
            only[name] += [{"frame": frame.index, "width": round(f.width), "score": round(f.score, 3)}
                           for f, k in zip(fs, m) if not k]
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "detectors": args.detectors, "every": args.every,
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": 1},
              "date": time.strftime("%Y-%m-%d"), "video": args.video.name, "frames": frames,
              "found": found, "found_by_both": both,
              "cpu_ms_per_frame": {n: round(cpu[n] / frames * 1000, 1) for n in args.detectors},
              "only": only}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name in args.detectors:
        widths = sorted(f["width"] for f in only[name])
        print(f"{name}: {found[name]} faces in {frames} frames, {cpu[name] / frames * 1000:.0f} ms a frame; "
              f"{len(widths)} found by it alone (widths {widths[:1] + widths[-1:]})")


if __name__ == "__main__":
    main()
