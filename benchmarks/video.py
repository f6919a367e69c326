"""Live video on generated clips: frames per second, per-frame identity accuracy, identity switches.

    python benchmarks/video.py --lfw ../shared/datasets/lfw        # -> benchmarks/results/video.json

For each frame size (640x480, 1280x720) and face count (1, 3, 10), and each seed, a clip from
``faceprint.testing.synth`` (8 s at 25 fps: LFW faces moving, scaling, switching photos, briefly
occluded, entering and leaving; half enrolled people, half strangers) is watched by the default
pipeline against a gallery holding the enrolled people from three LFW photos each that are not
in the clip. Timed: the whole loop a live source needs (decode, detect, track, embed, search),
then once more with drawing and writing the annotated video. Scored against the clip's ground
truth with ``faceprint.evaluation.video_score``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def run(lfw: Path, size: tuple[int, int], faces: int, seed: int, folder: Path) -> dict:
    from faceprint import Gallery
    from faceprint.evaluation import video_score
    from faceprint.video import Watch, Writer
    from faceprint.testing.synth import DEFAULT_ENROLLED, DEFAULT_STRANGERS, load_truth, make_clip

    clip = make_clip(lfw, folder / f"clip-{size[0]}x{size[1]}-{faces}-{seed}.mp4", enrolled=DEFAULT_ENROLLED,
                     strangers=DEFAULT_STRANGERS, size=size, faces=faces, seconds=8.0, seed=seed)
    db = folder / f"gallery-{size[0]}-{faces}-{seed}.db"
    with Gallery(db) as gallery:
        for person in DEFAULT_ENROLLED:
            used = set(clip.photos_used.get(person, []))
            for photo in [p for p in sorted((lfw / "images" / person).glob("*.jpg")) if p not in used][:3]:
                gallery.enroll(person, photo)
        start = time.perf_counter()
        frames = [[f.to_dict() for f in r.faces] for r in Watch(clip.video, gallery)]
        seconds = time.perf_counter() - start
        writer = Writer(folder / "annotated.mp4", clip.fps)
        start = time.perf_counter()
        for r in Watch(clip.video, gallery):
            writer.write(r.annotated())
        writer.close()
        seconds_annotated = time.perf_counter() - start
    score = video_score(load_truth(clip.truth), frames)
    return {"size": f"{size[0]}x{size[1]}", "faces": faces, "seed": seed, "frames": len(frames),
            "fps": round(len(frames) / seconds, 1), "fps_annotated": round(len(frames) / seconds_annotated, 1),
            **score.to_dict(), "load_avg_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--faces", type=int, nargs="*", default=[1, 3, 10])
    ap.add_argument("--sizes", nargs="*", default=["640x480", "1280x720"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="faceprint-video-") as tmp:
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            for faces in args.faces:
                for seed in args.seeds:
                    row = run(args.lfw, (w, h), faces, seed, Path(tmp))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    summary = []
    for size in args.sizes:
        for faces in args.faces:
            group = [r for r in rows if r["size"] == size and r["faces"] == faces]
            frames = sum(r["frames"] for r in group)
            face_frames = sum(r["face_frames"] for r in group)
            summary.append({
                "size": size, "faces": faces, "clips": len(group),
                # fps over all frames of the group's clips: total frames / total time
                "fps": round(frames / sum(r["frames"] / r["fps"] for r in group), 1),
                "fps_annotated": round(frames / sum(r["frames"] / r["fps_annotated"] for r in group), 1),
                "accuracy": round(sum(r["correct"] for r in group) / face_frames, 4),
                "missed": round(sum(r["missed"] for r in group) / face_frames, 4),
                "switches_per_track": round(sum(r["switches_per_track"] * r["people"] for r in group)
                                            / sum(r["people"] for r in group), 3),
                "renames_per_track": round(sum(r["renames_per_track"] * r["tracks"] for r in group)
                                           / sum(r["tracks"] for r in group), 3),
            })
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "summary": summary, "clips": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for s in summary:
        print(f"{s['size']:>9} {s['faces']:>2} faces: {s['fps']:6.1f} fps ({s['fps_annotated']:.1f} annotated), "
              f"accuracy {s['accuracy']:.3f}, switches/track {s['switches_per_track']:.2f}")


if __name__ == "__main__":
    main()
