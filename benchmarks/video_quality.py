"""Which face-quality model tells, in video, the faces that will match from those that will not.

    python benchmarks/video_quality.py --lfw ../shared/datasets/lfw   # -> benchmarks/results/video_quality.json

``benchmarks/quality.py`` judges quality on LFW's still photos; the video engine and ``capture``
judge the faces of every frame by one of the same models, so they are judged here on video too.
Every frame is detected and embedded (the default pipeline, as frame-by-frame identification does).
A face-frame of an enrolled person is *genuine*; its distance to that person's nearest gallery face
is what quality should predict, and it fails when that distance is over the gallery's threshold.

* **real**: ``crowd-1080p.mp4`` (1080p, people walking towards the camera). One walker is enrolled
  from a crop of frame 5 (``enrol_from_frame``); their face-frames are followed from frame 0's best
  match to the face whose box centre moved least (at most 60 px a frame). Every other face there is
  a stranger.
* **generated**: the ``mix`` and ``profile_then_frontal`` presets of ``faceprint.testing.synth``
  (LFW photos pasted and warped, not filmed: motion blur, JPEG, pan and zoom, turned heads), with
  the gallery ``benchmarks/video.py`` uses; face-frames matched to the truth by box overlap,
  occluded ones left out.

Per model (``quality`` models of ``faceprint.analysis``) and part: the rank correlation between
quality and genuine distance (negative: higher quality, closer), the genuine failure rate as the
lowest-quality 10/20/30% are dropped, and at the engine's ``GOOD`` (0.5): the share of genuine
face-frames rated good and the failure rate among those (a good face that fails is one frame-by-frame
identification calls, confidently, nobody), and strangers named among faces rated good.
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

import numpy as np
from _common import cpu_model  # beside this script
from scipy.stats import spearmanr
from video import clip_gallery  # beside this script

from faceprint import Gallery
from faceprint.analysis import Analyzer
from faceprint.evaluation import enrol_from_frame, load_truth
from faceprint.evaluation.video import pair_by_overlap
from faceprint.testing.synth import make_scenario
from faceprint.video.looks import GOOD
from faceprint.video.source import Source

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("video", "learned", "heuristic")
DROPS = (0.0, 0.1, 0.2, 0.3)


def _faces(video: Path, gallery: Gallery, analyzers: dict[str, Analyzer], who) -> list[dict]:
    """One row per face-frame: ``who(k, i, faces)`` gives the person at face i of frame k (None: skip)."""
    rows, seconds = [], dict.fromkeys(analyzers, 0.0)
    for k, frame in enumerate(Source(video, live=False).frames()):
        embeddings = gallery.pipeline.embed(frame.image)
        if not embeddings:
            continue
        faces = [e.face for e in embeddings]
        found = gallery.search(np.stack([e.vector for e in embeddings]), k=50)
        quality = {}
        for name, analyzer in analyzers.items():
            t = time.perf_counter()
            quality[name] = [a.quality for a in analyzer.analyze(frame.image, faces)]
            seconds[name] += time.perf_counter() - t
        for i, best in enumerate(found):
            person = who(k, i, faces)
            if person is None:
                continue
            own = [d for n, d in best if n == person]
            rows.append({"frame": k, "person": person, "genuine": bool(own),
                         "distance": own[0] if own else (best[0][1] if best else None),
                         **{name: quality[name][i].score for name in analyzers}})
    return rows


def _walker(video: Path, gallery: Gallery):
    """``who`` for the crowd clip: the enrolled walker, followed by box centre from frame 0's best match."""
    first = next(iter(Source(video, live=False).frames()))
    embeddings = gallery.pipeline.embed(first.image)
    start = min(embeddings, key=lambda e: gallery.search(e.vector[None])[0][0][1]).face
    state = {"at": np.reshape(start.box, (2, 2)).mean(0), "frame": -1}

    def who(k: int, i: int, faces) -> str | None:
        if state["frame"] != k:  # first face of a new frame: pick the walker's face there
            centres = [np.reshape(f.box, (2, 2)).mean(0) for f in faces]
            moved = [float(np.linalg.norm(c - state["at"])) for c in centres]
            state["frame"], state["face"] = k, int(np.argmin(moved)) if min(moved) <= 60 else None
            if state["face"] is not None:
                state["at"] = centres[state["face"]]
        return "walker" if i == state["face"] else "stranger"

    return who


def _truth(clip):
    """``who`` for a generated clip: the truth's person at the face's place (None: none, or occluded)."""
    truth = load_truth(clip.truth)

    def who(k: int, i: int, faces) -> str | None:
        t = truth[k]["faces"]
        pairs = pair_by_overlap([{"box": list(f.box)} for f in faces], t, 0.3)
        return None if i not in pairs or t[pairs[i]]["occluded"] else t[pairs[i]]["person"]

    return who


def _judge(rows: list[dict], threshold: float) -> dict:
    genuine = [r for r in rows if r["genuine"]]
    strangers = [r for r in rows if not r["genuine"]]
    d = np.array([r["distance"] for r in genuine])
    out = {"genuine_face_frames": len(genuine), "stranger_face_frames": len(strangers),
           "genuine_failures": round(float((d > threshold).mean()), 4) if len(d) else None}
    for name in MODELS:
        q = np.array([r[name] for r in genuine])
        order = np.argsort(q, kind="stable")
        good = q >= GOOD
        named = [r for r in strangers if r[name] >= GOOD and r["distance"] is not None and r["distance"] <= threshold]
        out[name] = {
            "spearman_with_distance": round(float(spearmanr(q, d).correlation), 3),
            "failures_after_dropping": {f"{p:.0%}": round(float((d[order[int(round(p * len(d))):]] > threshold).mean()), 4)
                                        for p in DROPS},
            "share_good": round(float(good.mean()), 3),
            "failures_among_good": round(float((d[good] > threshold).mean()), 4) if good.any() else None,
            "strangers_named_among_good": len(named),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "datasets" / "video" / "crowd-1080p.mp4")
    ap.add_argument("--scenarios", nargs="*", default=["mix", "profile_then_frontal"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video_quality.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    analyzers = {name: Analyzer("quality", {"quality": name}) for name in MODELS}
    groups: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="faceprint-vq-") as tmp:
        if args.real.is_file():
            with Gallery(Path(tmp) / "real.db") as gallery:
                enrol_from_frame(gallery, args.real, "walker", frame=5)
                threshold = gallery.threshold
                groups["real"] = _faces(args.real, gallery, analyzers, _walker(args.real, gallery))
        for name in args.scenarios:
            for seed in args.seeds:
                clip = make_scenario(name, args.lfw, Path(tmp) / f"{name}-{seed}.mp4", seed=seed)
                with clip_gallery(args.lfw, clip, Path(tmp) / f"{name}-{seed}.db") as gallery:
                    threshold = gallery.threshold
                    groups.setdefault(f"generated: {name}", []).extend(_faces(clip.video, gallery, analyzers,
                                                                              _truth(clip)))
                print(name, seed, flush=True)
    groups["generated: all"] = [r for g, rows in groups.items() if g.startswith("generated") for r in rows]
    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "threshold": threshold, "good": GOOD,
              "groups": {g: _judge(rows, threshold) for g, rows in groups.items()},
              "seconds": round(time.perf_counter() - t0, 1)}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for g, r in report["groups"].items():
        print(f"{g}: {r['genuine_face_frames']} genuine face-frames, {r['genuine_failures']:.1%} fail")
        for name in MODELS:
            m = r[name]
            print(f"  {name:>9}: rho {m['spearman_with_distance']:+.3f}, failures after dropping "
                  f"{m['failures_after_dropping']}, good {m['share_good']:.0%} failing {m['failures_among_good']}, "
                  f"strangers named among good {m['strangers_named_among_good']}")


if __name__ == "__main__":
    main()
