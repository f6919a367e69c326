"""LFW accuracy of every detector x embedder combination, plus the experiments that chose the default.

    python benchmarks/lfw.py --lfw ../shared/datasets/lfw            # all runs -> benchmarks/results/lfw.json

Each combination is one `faceprint eval lfw` run (its command is stored with its numbers); the
embedding cache makes a re-run cheap. The experiments (flip averaging, alignment variants, fusion
weights) need crops the CLI does not make, so they run here, from one MTCNN pass whose faces are
cached too. Embedding runs use one process (`--workers 1`) so a shared 2-core machine keeps a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # beside this script

os.environ.setdefault("FACEPRINT_THREADS", "1")

from faceprint import evaluation as ev  # noqa: E402
from faceprint import zoo  # noqa: E402
from faceprint.zoo import cache_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: (detector, embedder): every embedder behind the default detector (blazeface-mtcnn) and behind
#: MTCNN; the fast detectors with the fast and the best embedders; face_recognition's own detector
#: with its own and the best embedder; RetinaFace (the default's last resort, for masked faces) with the best.
COMBOS = [
    ("blazeface-mtcnn", "faceplugin"), ("blazeface-mtcnn", "expo-mobilefacenet"), ("blazeface-mtcnn", "dlib-resnet"),
    ("blazeface-mtcnn", "facenet"), ("blazeface-mtcnn", "mobilefacenet"), ("blazeface-mtcnn", "faceplugin+dlib-resnet"),
    ("mtcnn", "expo-mobilefacenet"),
    ("mtcnn", "faceplugin"), ("mtcnn", "dlib-resnet"), ("mtcnn", "facenet"), ("mtcnn", "mobilefacenet"),
    ("mtcnn", "faceplugin+dlib-resnet"),
    ("blazeface", "mobilefacenet"), ("blazeface", "faceplugin"),
    ("blazeface-short", "mobilefacenet"), ("blazeface-short", "expo-mobilefacenet"),
    ("blazeface-short-mtcnn", "faceplugin"), ("blazeface-short-mtcnn", "expo-mobilefacenet"),
    ("dlib-hog", "faceplugin"), ("dlib-hog", "dlib-resnet"),
    ("retinaface", "faceplugin"),
]


def run_combo(lfw: Path, detector: str, embedder: str) -> dict:
    out = RESULTS / f"lfw-{detector}-{embedder}.json"
    cmd = ["faceprint", "eval", "lfw", "--lfw", str(lfw), "--detector", detector, "--embedder", embedder,
           "--workers", "1", "--json", str(out.relative_to(ROOT))]
    subprocess.run([sys.executable, "-m", "faceprint", *cmd[1:]], check=True, cwd=ROOT)
    report = json.loads(out.read_text())
    report["command"] = "FACEPRINT_THREADS=1 " + " ".join(cmd)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


# -- experiments ------------------------------------------------------------------------------
def _variants(lfw: Path, unique: list[str]) -> dict[str, np.ndarray]:
    """faceplugin vectors of four crops per image from one MTCNN pass: as shipped (bilinear warp,
    five points), its mirror image, a bicubic warp, and an alignment on eyes + mouth only."""
    import cv2

    from faceprint.alignment import ARCFACE_112, similarity
    from faceprint.imageio import load_image
    from faceprint.pipeline import get_pipeline

    pipe = get_pipeline("mtcnn", "faceplugin")
    key = ev.cache_path(unique, "mtcnn", "faceplugin")[0].stem.split("-")[-1]
    saved = cache_dir() / "eval" / f"variants-mtcnn+faceplugin-{key}.npz"
    if saved.is_file():
        return dict(np.load(saved))
    no_nose = {k: v for k, v in ARCFACE_112.items() if k not in ("nose", "nose_base")}
    out = {k: np.zeros((len(unique), 512), np.float32) for k in ("plain", "flip", "cubic", "nonose")}
    found = np.zeros(len(unique), bool)
    for i, p in enumerate(unique):
        image = load_image(p)
        faces = pipe.detector.detect(image)
        if not faces:
            continue
        f, found[i] = ev.central(faces, image.shape), True
        m = similarity(f, ARCFACE_112)
        lin = _warp(image, m, cv2.INTER_LINEAR)
        crops = np.stack([lin, lin[:, ::-1], _warp(image, m, cv2.INTER_CUBIC),
                          _warp(image, similarity(f, no_nose), cv2.INTER_LINEAR)])
        for k, v in zip(out, pipe.embedder.embed_crops(crops)):
            out[k][i] = v
    out["found"] = found
    np.savez(saved, **out)
    return out


def _warp(image: np.ndarray, m: np.ndarray, interpolation: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(image, m, (112, 112), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def _pair_distances(pairs, unique, matrix, found) -> np.ndarray:
    idx = {p: i for i, p in enumerate(unique)}
    a = np.array([idx[str(p.a)] for p in pairs])
    b = np.array([idx[str(p.b)] for p in pairs])
    m = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return np.where(found[a] & found[b], 1 - (m[a] * m[b]).sum(1), ev.MISSING_DISTANCE)


def _summary(name: str, how: str, pairs, d: np.ndarray) -> dict:
    same = np.array([p.same for p in pairs])
    r = ev.ten_fold(pairs, d)
    return {"name": name, "how": how, "accuracy_mean": r.mean, "accuracy_std": r.std, "threshold": r.threshold,
            "auc": ev.auc(d, same), "tar_at_far": [ev.tar_at_far(d, same, f) for f in (1e-2, 1e-3)]}


def _nested_fusion(name: str, pairs, d1: np.ndarray, d2: np.ndarray) -> dict:
    """Weight w on d1 (1 - w on d2) picked on the nine training folds, accuracy on the tenth: an
    honest estimate of what a fusion weight tuned on LFW would give on unseen pairs."""
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    both = (d1 < ev.MISSING_DISTANCE) & (d2 < ev.MISSING_DISTANCE)
    accs, weights = [], []
    for k in range(10):
        train, test = folds != k, folds == k
        best = (-1.0, 0.0, 0.0)
        for w in np.linspace(0, 1, 21):
            d = np.where(both, w * d1 + (1 - w) * d2, ev.MISSING_DISTANCE)
            t = ev.best_threshold(d[train], same[train])
            acc = float(((d[train] <= t) == same[train]).mean())
            if acc > best[0] + 1e-12:
                best = (acc, float(w), t)
        _, w, t = best
        d = np.where(both, w * d1 + (1 - w) * d2, ev.MISSING_DISTANCE)
        accs.append(float(((d[test] <= t) == same[test]).mean()))
        weights.append(round(w, 2))
    return {"name": name, "how": "weight picked on the 9 training folds (grid 0..1 step 0.05), tested on the 10th",
            "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_weights": weights}


def experiments(lfw: Path) -> list[dict]:
    pairs = ev.read_pairs(lfw)
    unique = sorted({str(p) for pair in pairs for p in (pair.a, pair.b)})
    vectors = {e: ev.embed_images([Path(p) for p in unique], "mtcnn", e, 1)[0]
               for e in ("faceplugin", "dlib-resnet", "facenet", "mobilefacenet")}
    d = {e: ev.pair_distances(pairs, v) for e, v in vectors.items()}
    v = _variants(lfw, unique)
    dv = {k: _pair_distances(pairs, unique, v[k], v["found"]) for k in ("plain", "flip", "cubic", "nonose")}
    dv["flip_avg"] = _pair_distances(pairs, unique, v["plain"] + v["flip"], v["found"])
    dv["flip_avg_cubic"] = _pair_distances(pairs, unique, v["cubic"] + v["flip"], v["found"])
    out = [
        _summary("faceplugin", "as shipped: MTCNN, bilinear warp on 5 points, BGR, no flip", pairs, dv["plain"]),
        _summary("faceplugin mirrored", "the mirror image of the shipped crop only", pairs, dv["flip"]),
        _summary("faceplugin flip-avg", "sum of the crop's and its mirror's unit vectors", pairs, dv["flip_avg"]),
        _summary("faceplugin bicubic", "bicubic instead of bilinear warp", pairs, dv["cubic"]),
        _summary("faceplugin eyes+mouth", "alignment fitted on 4 points, nose left out", pairs, dv["nonose"]),
        _summary("faceplugin flip-avg bicubic", "both", pairs, dv["flip_avg_cubic"]),
    ]
    for other in ("dlib-resnet", "facenet", "mobilefacenet"):
        both = (d["faceplugin"] < 2) & (d[other] < 2)
        out.append(_summary(f"faceplugin+{other} equal", "concatenated unit vectors (= mean cosine distance)",
                            pairs, np.where(both, (d["faceplugin"] + d[other]) / 2, 2.0)))
        out.append(_nested_fusion(f"faceplugin+{other} tuned", pairs, d["faceplugin"], d[other]))
    return out


def stage_times(lfw: Path, n: int = 60) -> dict[str, float]:
    """CPU milliseconds per image for each detector and per face for each embedder, one thread,
    one face per call as in the evaluation (process time, so other jobs on the machine matter less)."""
    from faceprint.detection import detector_names, get_detector
    from faceprint.embedding import embedder_names, get_embedder
    from faceprint.embedding.faceplugin import FacePlugin
    from faceprint.imageio import load_image

    paths = sorted({str(p) for pair in ev.read_pairs(lfw, 1, 30) for p in (pair.a, pair.b)})[:n]
    images = [load_image(p) for p in paths]
    out, faces = {}, []
    for name in detector_names():
        det = get_detector(name)
        det.detect(images[0])  # warm-up: first-call allocations are not per-image cost
        start = time.process_time()
        found = [det.detect(im) for im in images]
        out[f"detect {name}"] = (time.process_time() - start) / len(images) * 1000
        if name == "mtcnn":
            faces = [(im, ev.central(f, im.shape)) for im, f in zip(images, found) if f]
    embedders = {e: get_embedder(e) for e in embedder_names()} | {"faceplugin flip": FacePlugin(flip=True)}
    for name, emb in embedders.items():
        emb.embed_faces(faces[0][0], [faces[0][1]])  # warm-up
        start = time.process_time()
        for im, f in faces:
            emb.embed_faces(im, [f])
        out[f"embed {name}"] = (time.process_time() - start) / len(faces) * 1000
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--only", nargs="*", help="DETECTOR:EMBEDDER runs to (re)do; default all")
    ap.add_argument("--keep-experiments", action="store_true",
                    help="reuse the experiments saved in lfw.json instead of redoing them (they need MTCNN passes)")
    args = ap.parse_args()
    lfw = args.lfw.resolve() if not args.lfw.is_absolute() else args.lfw
    lfw = Path(os.path.relpath(lfw, ROOT))
    combos = [tuple(c.split(":")) for c in args.only] if args.only else COMBOS
    runs = [run_combo(lfw, d, e) for d, e in combos]
    saved = RESULTS / "lfw.json"
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    old = previous.get("runs", [])
    done = {(r["detector"], r["embedder"]) for r in runs}
    runs = [r for r in old if (r["detector"], r["embedder"]) not in done] + runs
    order = {c: i for i, c in enumerate(COMBOS)}
    runs.sort(key=lambda r: order.get((r["detector"], r["embedder"]), 99))
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
                   f"Python {platform.python_version()}, shared with other jobs (timings are indicative)",
        "date": time.strftime("%Y-%m-%d"),
        "notes": "runs: `faceprint eval lfw` reports (schema faceprint.eval.lfw/1, docs/benchmarks.md); their "
                 "seconds_per_image is wall time x workers of the run that filled the embedding cache. "
                 "cpu_ms: process CPU time, one thread, 60 images. experiments: MTCNN detections, 10 folds.",
        "command": "FACEPRINT_THREADS=1 python benchmarks/lfw.py " + " ".join(sys.argv[1:]),
        "runs": runs,
        "experiments": previous["experiments"] if args.keep_experiments else experiments(lfw),
        "cpu_ms": stage_times(lfw),
        "model_bytes": {s.name: s.size for s in zoo.specs()},
    }
    saved.write_text(json.dumps(report, indent=2) + "\n")
    for r in runs:
        print(f"{r['detector']:10} {r['embedder']:24} {r['accuracy_mean'] * 100:.2f} ± {r['accuracy_std'] * 100:.2f}")
    for x in report["experiments"]:
        print(f"{x['name']:40} {x['accuracy_mean'] * 100:.2f} ± {x['accuracy_std'] * 100:.2f}")


if __name__ == "__main__":
    main()
