"""Live video: frames per second, identity against ground truth and against frame-by-frame identification.

    python benchmarks/video.py --lfw ../shared/datasets/lfw        # -> benchmarks/results/video.json

Three parts, each recording the machine's load average (the machine may be shared: fps measured
under load is pessimistic; CPU time per frame, all threads, is less affected):

* **speed**: for each frame size (640x480, 1280x720) and face count (1, 3, 10), and each seed, a
  plain clip from ``faceprint.testing.synth`` (8 s at 25 fps: LFW faces moving, scaling, switching
  photos, briefly occluded, entering and leaving; half enrolled, half strangers) is watched by the
  default pipeline against a gallery of the enrolled people from three LFW photos each that the
  clip never shows. Timed: the whole loop a live source needs (decode, detect, track, embed,
  search), then again drawing and writing the annotated video. Scored against the truth.
* **scenarios**: the realistic presets (``make_scenario``: ``cut_replace``, ``profile_then_frontal``,
  ``mix``) per seed, scored by ``faceprint.evaluation.video_report`` against both the truth
  (wrong names, tracks outliving a cut) and frame-by-frame identification (recall, contradictions,
  time to name).
* **real**: ``crowd-1080p.mp4`` (real 1080p footage, many walking faces; not in the repository),
  scored the same way without truth, twice: one walker enrolled from a crop of frame 5
  (``enrol_from_frame``), then every good face of frame 5 enrolled, each as a person of its own
  (``enrol_everyone``), so that every track frame-by-frame identification can name is judged.

``--detector NAME`` gives every gallery (so ``watch`` and frame-by-frame identification alike)
another detector than the default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def _load() -> dict:
    return {"load_avg_1min": round(os.getloadavg()[0], 2),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def clip_gallery(lfw: Path, clip, db: Path, detector: str | None = None):
    from faceprint import Gallery
    from faceprint.testing.synth import DEFAULT_ENROLLED

    gallery = Gallery(db, detector=detector)
    for person in DEFAULT_ENROLLED:
        used = set(clip.photos_used.get(person, []))
        for photo in [p for p in sorted((lfw / "images" / person).glob("*.jpg")) if p not in used][:3]:
            gallery.enroll(person, photo)
    return gallery


def speed(lfw: Path, size: tuple[int, int], faces: int, seed: int, folder: Path, detector: str | None) -> dict:
    from faceprint.evaluation import load_truth, video_against_truth
    from faceprint.testing.synth import DEFAULT_ENROLLED, DEFAULT_STRANGERS, make_clip
    from faceprint.video import Watch, Writer

    clip = make_clip(lfw, folder / f"clip-{size[0]}x{size[1]}-{faces}-{seed}.mp4", enrolled=DEFAULT_ENROLLED,
                     strangers=DEFAULT_STRANGERS, size=size, faces=faces, seconds=8.0, seed=seed)
    with clip_gallery(lfw, clip, folder / f"gallery-{size[0]}-{faces}-{seed}.db", detector) as gallery:
        start, cpu = time.perf_counter(), time.process_time()
        frames = [[f.to_dict() for f in r.faces] for r in Watch(clip.video, gallery)]
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        writer = Writer(folder / "annotated.mp4", clip.fps)
        start = time.perf_counter()
        for r in Watch(clip.video, gallery):
            writer.write(r.annotated())
        writer.close()
        seconds_annotated = time.perf_counter() - start
    score = video_against_truth(load_truth(clip.truth), frames)
    return {"size": f"{size[0]}x{size[1]}", "faces": faces, "seed": seed, "frames": len(frames),
            "fps": round(len(frames) / seconds, 1), "fps_annotated": round(len(frames) / seconds_annotated, 1),
            "cpu_ms_per_frame": round(cpu / len(frames) * 1000, 1), **score, **_load()}


def scenario(lfw: Path, name: str, seed: int, folder: Path, detector: str | None) -> dict:
    from faceprint.evaluation import video_report
    from faceprint.testing.synth import make_scenario

    clip = make_scenario(name, lfw, folder / f"{name}-{seed}.mp4", seed=seed)
    with clip_gallery(lfw, clip, folder / f"gallery-{name}-{seed}.db", detector) as gallery:
        report = video_report(clip.video, gallery, clip.truth)
    return {"scenario": name, "seed": seed, **_flat(report), **_load()}


def real(video: Path, folder: Path, detector: str | None, everyone: bool) -> dict:
    """The real clip against frame-by-frame identification, with one walker enrolled from frame 5, or
    with ``everyone`` whose face is good there (each a person of their own)."""
    from faceprint import Gallery
    from faceprint.evaluation import enrol_everyone, enrol_from_frame, video_report

    with Gallery(folder / f"gallery-real-{everyone}.db", detector=detector) as gallery:
        if everyone:
            enrolled = enrol_everyone(gallery, video, frame=5)
        else:
            enrol_from_frame(gallery, video, "walker", frame=5)
            enrolled = ["walker"]
        report = video_report(video, gallery)
    return {"video": video.name, "enrolled": enrolled, **_flat(report), **_load()}


def _flat(report: dict) -> dict:
    """The report's numbers, with frame-by-frame delays kept per track for pooling."""
    out = {"frames": report["frames"], "fps": report["fps"], "cpu_ms_per_frame": report["cpu_ms_per_frame"],
           "reference": report["reference"]}
    if "truth" in report:
        out["truth"] = report["truth"]
    return out


def _pool(rows: list[dict]) -> dict:
    """Scenario rows pooled: rates over all face-frames, delays over all tracks."""
    ref = [r["reference"] for r in rows]
    tru = [r["truth"] for r in rows if "truth" in r]
    named = sum(r["named_by_reference"] for r in ref)
    faces = sum(r["face_frames"] for r in ref)
    pooled = {
        "clips": len(rows),
        "recall": round(sum(r["recall"] * r["named_by_reference"] for r in ref if r["recall"] is not None) / named, 4)
        if named else None,
        "contradiction_rate": round(sum(r["contradictions"] for r in ref) / faces, 4) if faces else 0.0,
        "carried_rate": round(sum(r["carried"] for r in ref) / faces, 4) if faces else 0.0,
        "delays": sorted(d for r in ref for d in r["time_to_name"]["delays"]),
        "never_named": sum(r["time_to_name"]["never"] for r in ref),
        "fps": round(sum(r["frames"] for r in rows) / sum(r["frames"] / r["fps"] for r in rows), 1),
    }
    d = np.array(pooled["delays"], float)
    pooled["time_to_name_median"] = float(np.median(d)) if len(d) else None
    pooled["time_to_name_p95"] = float(np.percentile(d, 95)) if len(d) else None
    if tru:
        in_view = sum(t["face_frames_in_view"] for t in tru)
        pooled |= {"accuracy": round(sum(t["correct"] for t in tru) / sum(t["face_frames"] for t in tru), 4),
                   "wrong_name_rate": round(sum(t["wrong_names"] for t in tru) / in_view, 5),
                   "cuts": sum(t["cuts"] for t in tru), "tracks_across_cuts": sum(t["tracks_across_cuts"] for t in tru)}
    return pooled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--faces", type=int, nargs="*", default=[1, 3, 10])
    ap.add_argument("--sizes", nargs="*", default=["640x480", "1280x720"])
    ap.add_argument("--scenarios", nargs="*", default=["cut_replace", "profile_then_frontal", "mix"])
    ap.add_argument("--scenario-seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "datasets" / "video" / "crowd-1080p.mp4")
    ap.add_argument("--detector", help="the galleries' detector (default: faceprint's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = ap.parse_args()
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "detector": args.detector or "default", "load_at_start": _load()}
    rows, scenes, reals = [], [], []
    with tempfile.TemporaryDirectory(prefix="faceprint-video-") as tmp:
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            for faces in args.faces:
                for seed in args.seeds:
                    rows.append(speed(args.lfw, (w, h), faces, seed, Path(tmp), args.detector))
                    print(json.dumps(rows[-1]), flush=True)
        for name in args.scenarios:
            for seed in args.scenario_seeds:
                scenes.append(scenario(args.lfw, name, seed, Path(tmp), args.detector))
                print(json.dumps(scenes[-1]), flush=True)
        if args.real.is_file():
            for everyone in (False, True):
                reals.append(real(args.real, Path(tmp), args.detector, everyone))
                print(json.dumps(reals[-1]), flush=True)
    summary = []
    for size in args.sizes:
        for faces in args.faces:
            group = [r for r in rows if r["size"] == size and r["faces"] == faces]
            if not group:
                continue
            frames = sum(r["frames"] for r in group)
            face_frames = sum(r["face_frames"] for r in group)
            summary.append({
                "size": size, "faces": faces, "clips": len(group),
                # fps over all frames of the group's clips: total frames / total time
                "fps": round(frames / sum(r["frames"] / r["fps"] for r in group), 1),
                "fps_annotated": round(frames / sum(r["frames"] / r["fps_annotated"] for r in group), 1),
                "cpu_ms_per_frame": round(sum(r["cpu_ms_per_frame"] * r["frames"] for r in group) / frames, 1),
                "accuracy": round(sum(r["correct"] for r in group) / face_frames, 4),
                "missed": round(sum(r["missed"] for r in group) / face_frames, 4),
                "wrong_name_rate": round(sum(r["wrong_names"] for r in group)
                                         / sum(r["face_frames_in_view"] for r in group), 5),
                "switches_per_track": round(sum(r["switches_per_track"] * r["people"] for r in group)
                                            / sum(r["people"] for r in group), 3),
                "renames_per_track": round(sum(r["renames_per_track"] * r["tracks"] for r in group)
                                           / sum(r["tracks"] for r in group), 3),
            })
    by_scenario = {name: _pool([r for r in scenes if r["scenario"] == name]) for name in args.scenarios}
    if scenes:
        by_scenario["all"] = _pool(scenes)
    report |= {"summary": summary, "scenarios": by_scenario, "real": reals, "load_at_end": _load(),
               "clips": rows, "scenario_clips": scenes}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for s in summary:
        print(f"{s['size']:>9} {s['faces']:>2} faces: {s['fps']:6.1f} fps ({s['fps_annotated']:.1f} annotated), "
              f"accuracy {s['accuracy']:.3f}, wrong names {s['wrong_name_rate']:.4f}")
    for name, s in by_scenario.items():
        print(f"{name:>22}: recall {s['recall']}, contradictions {s['contradiction_rate']}, time to name "
              f"median {s['time_to_name_median']} p95 {s['time_to_name_p95']}, wrong names {s.get('wrong_name_rate')}, "
              f"tracks across cuts {s.get('tracks_across_cuts')}")
    for r in reals:
        print(f"{r['video']:>22}: {r['fps']} fps, recall {r['reference']['recall']}, contradictions "
              f"{r['reference']['contradiction_rate']}, tracks per person {r['reference']['tracks_per_person']}")


if __name__ == "__main__":
    main()
