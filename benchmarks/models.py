"""Per-model CPU cost: ms per image for each detector, ms per face for each embedder.

    python benchmarks/models.py --lfw ../shared/datasets/lfw --images 200 --out benchmarks/results/models.json

Detectors run on real 250x250 LFW images one at a time (what a photo or a video frame costs);
embedders per face one at a time (alignment included) and, where the model takes one crop, on
aligned crops in batches of 32. Each timing is
the median of per-call times after a warm-up, so model loading is not counted (it is reported
separately as ``load_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from _common import cpu_model  # beside this script

import numpy as np

from faceprint import runtime
from faceprint.alignment import align
from faceprint.detection import detector_names, get_detector
from faceprint.embedding import embedder_names, get_embedder
from faceprint.imageio import load_image


def _median_ms(fn, items) -> float:
    fn(items[0])  # warm-up
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    paths = sorted((args.lfw / "images").glob("*/*_0001.jpg"))[:: max(1, 5749 // args.images)][: args.images]
    images = [load_image(p) for p in paths]
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}",
        "threads": runtime.threads(),
        "images": len(images),
        "detectors": {},
        "embedders": {},
    }
    for name in detector_names():
        t = time.perf_counter()
        det = get_detector(name)
        load = time.perf_counter() - t
        report["detectors"][name] = {"ms_per_image": round(_median_ms(det.detect, images), 2), "load_s": round(load, 2)}
        print(name, report["detectors"][name], flush=True)
    mtcnn = get_detector("mtcnn")
    faces = [(im, f[0]) for im in images if (f := mtcnn.detect(im))]
    for name in embedder_names():
        t = time.perf_counter()
        emb = get_embedder(name)
        load = time.perf_counter() - t
        single = _median_ms(lambda face: emb.embed_faces(*face), [(im, [f]) for im, f in faces])
        try:  # one model call for 32 aligned crops; a fusion has no single crop to batch
            crops = np.stack([align(im, f, emb.template, emb.size).pixels for im, f in faces])
            batches = [crops[i:i + 32] for i in range(0, len(crops) - 31, 32)]
            batched = round(_median_ms(emb.embed_crops, batches) / 32, 2) if batches else None
        except TypeError:
            batched = None
        report["embedders"][name] = {"ms_per_face_batch1": round(single, 2), "ms_per_face_batch32": batched,
                                     "load_s": round(load, 2), "flip": bool(emb.flip)}
        print(name, report["embedders"][name], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
