"""Masked faces end to end: can each detector still find them, and each embedder still match them?

    python benchmarks/masked.py --lfw ../shared/datasets/lfw --folds 2   # -> benchmarks/results/masked.json
    python benchmarks/masked.py --lfw ../shared/datasets/lfw --folds 2 --embedders \
        --out benchmarks/results/masked-detection.json                    # (a) alone, a few minutes

LFW View 2's pairs of the first ``--folds`` folds (300 same and 300 different pairs each). Every
image's subject (the default detector's central face) gets a drawn mask (``faceprint.testing.masks``,
seeded by the image's name: a generated mask, with the limits its module states), placed from the
landmarks of the unmasked photo, as a real mask sits where the face is.

(a) Detection recall of each detector on the masked images: the share where it finds a face whose
    box overlaps the unmasked subject's box by IoU 0.5 or more, beside the same on the plain images.
(b) Verification per embedder with the default detector run on what the camera would see: pairs
    plain/plain, masked/plain (the first photo masked: a masked person at the door, enrolled from a
    plain photo) and masked/masked. Accuracy is cross-validated over the folds like `eval lfw`
    (threshold chosen on the other folds), and also given at the embedder's shipped threshold; a
    masked face the detector misses counts as a wrong answer (distance 2.0).
(c) A mask-aware threshold: the cross-validated one on masked/plain pairs against the shipped one.

What it cannot tell: drawn masks are flat colour with a little shading, no folds, straps or glare;
real masks, worn by real people, vary far more.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ("blazeface-mtcnn", "blazeface", "blazeface-short", "mtcnn", "dlib-hog", "retinaface")
EMBEDDERS = ("faceplugin", "expo-mobilefacenet", "faceplugin+dlib-resnet", "dlib-resnet", "facenet", "mobilefacenet")


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--detectors", nargs="*", default=list(DETECTORS), help="(a): detectors compared")
    ap.add_argument("--embedders", nargs="*", default=list(EMBEDDERS), help="(b), (c): embedders compared (none: skipped)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "masked.json")
    args = ap.parse_args()
    from faceprint import zoo
    from faceprint.detection import DEFAULT_DETECTOR, get_detector
    from faceprint.embedding import get_embedder
    from faceprint.evaluation import MISSING_DISTANCE, ten_fold
    from faceprint.imageio import load_image
    from faceprint.lfw import central, pair_images, read_pairs
    from faceprint.testing.masks import put_mask

    started = time.perf_counter()
    pairs = read_pairs(args.lfw, args.folds)
    images = sorted(pair_images(pairs))
    detector = get_detector(DEFAULT_DETECTOR)
    plain, masked, subject = {}, {}, {}
    for path in images:
        pixels = load_image(path)
        faces = detector.detect(pixels)
        if not faces:
            continue  # no subject to mask (the default detector finds one in every View 2 image)
        subject[path] = central(faces, pixels.shape)
        seed = int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:4], "little")
        plain[path], masked[path] = pixels, put_mask(pixels, subject[path], seed=seed)
    print(f"{len(subject)} of {len(images)} images have a subject to mask", flush=True)

    recall = {}
    for name in args.detectors:
        d = get_detector(name)
        begun = time.perf_counter()
        found = {kind: sum(any(_iou(f.box, subject[p].box) >= 0.5 for f in d.detect(source[p])) for p in subject)
                 for kind, source in (("plain", plain), ("masked", masked))}
        recall[name] = {**{kind: round(n / len(subject), 4) for kind, n in found.items()},
                        "ms_per_image": round((time.perf_counter() - begun) / (2 * len(subject)) * 1e3, 2)}
        print(f"detector {name:16} recall plain {recall[name]['plain']:.2%} masked {recall[name]['masked']:.2%} "
              f"({recall[name]['ms_per_image']} ms an image)", flush=True)

    # the default detector on what the camera sees: its central face of the masked image, if it finds one
    seen = {}
    for p in subject:
        faces = [f for f in detector.detect(masked[p]) if _iou(f.box, subject[p].box) >= 0.5]
        seen[p] = central(faces, masked[p].shape) if faces else None
    same = np.array([pair.same for pair in pairs])
    verification = {}
    for name in args.embedders:
        emb = get_embedder(name)
        vec = {("plain", p): emb.embed_faces(plain[p], [subject[p]])[0] for p in subject}
        vec.update({("masked", p): emb.embed_faces(masked[p], [seen[p]])[0] for p in subject if seen[p] is not None})

        def distances(first: str, second: str) -> np.ndarray:
            a, b = [vec.get((first, pair.a)) for pair in pairs], [vec.get((second, pair.b)) for pair in pairs]
            return np.array([MISSING_DISTANCE if x is None or y is None else float(1 - x @ y) for x, y in zip(a, b)])

        shipped = zoo.get(name).threshold
        rows = {}
        for label, (first, second) in {"plain/plain": ("plain", "plain"), "masked/plain": ("masked", "plain"),
                                       "masked/masked": ("masked", "masked")}.items():
            d = distances(first, second)
            folds = ten_fold(pairs, d)
            rows[label] = {"accuracy_cv": round(folds.mean, 4), "threshold_cv": round(folds.threshold, 4),
                           "accuracy_at_shipped": round(float(((d <= shipped) == same).mean()), 4),
                           "tar_at_shipped": round(float((d[same] <= shipped).mean()), 4),
                           "far_at_shipped": round(float((d[~same] <= shipped).mean()), 4)}
        verification[name] = {"shipped_threshold": shipped, **rows}
        print(f"embedder {name:22} " + "  ".join(f"{k} {v['accuracy_cv']:.2%} (at shipped {v['accuracy_at_shipped']:.2%}, "
                                                f"cv threshold {v['threshold_cv']:.3f})" for k, v in rows.items()),
              flush=True)

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/masked.py " + " ".join(sys.argv[1:]),
        "pairs": len(pairs), "folds": args.folds, "images": len(images), "masked_images": len(subject),
        "default_detector_found_masked": sum(v is not None for v in seen.values()),
        "detection_recall": recall, "verification": verification,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
