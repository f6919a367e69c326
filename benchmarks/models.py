"""Per-model CPU cost: ms per image for each detector, ms per face for each embedder.

    python benchmarks/models.py --lfw ../shared/datasets/lfw --images 200 --out benchmarks/results/models.json

Detectors run on real 250x250 LFW images one at a time (what a photo or a video frame costs);
embedders per face one at a time (alignment included) and, where the model takes one crop, on
aligned crops in batches of 32. Each timing is
the median of per-call times after a warm-up, so model loading is not counted (it is reported
separately as ``load_s``).

On a machine other jobs share, wall time mostly measures the queue: ``--clock cpu`` times the
process's CPU seconds instead (run it with ``FACEPRINT_THREADS=1``, so CPU time is compute time).
``--only`` limits the run to some models; ``--dlib-runtime`` adds dlib-resnet run by dlib itself
(as face_recognition runs it) beside its ONNX conversion. The int8 models need ``FACEPRINT_LFW``.

    FACEPRINT_THREADS=1 FACEPRINT_LFW=../shared/datasets/lfw python benchmarks/models.py \
        --lfw ../shared/datasets/lfw --images 64 --clock cpu --dlib-runtime \
        --only blazeface-mtcnn dlib-resnet dlib-resnet-int8 faceplugin faceplugin+dlib-resnet
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

from faceprint import runtime, zoo
from faceprint.alignment import DLIB_150, align
from faceprint.detection import detector_names, get_detector
from faceprint.embedding import embedder_names, get_embedder
from faceprint.imageio import load_image


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def _median_ms(fn, items) -> float:
    fn(items[0])  # warm-up
    times = []
    for it in items:
        t = clock()
        fn(it)
        times.append(clock() - t)
    return statistics.median(times) * 1000


class DlibRuntime:
    """dlib-resnet's weights run by dlib itself, on the same aligned chips as its ONNX conversion."""

    name, size, template, flip = "dlib-resnet (dlib runtime)", 150, DLIB_150, False

    def __init__(self) -> None:
        import dlib

        self.net = dlib.face_recognition_model_v1(str(zoo.get("dlib-resnet").path("model")))

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        return np.array([np.array(v) for v in self.net.compute_face_descriptor(list(crops))])

    def embed_faces(self, image: np.ndarray, faces: list) -> np.ndarray:
        return self.embed_crops(np.stack([align(image, f, DLIB_150, 150).pixels for f in faces]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", nargs="+", metavar="MODEL", help="time only these detectors and embedders")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall")
    ap.add_argument("--dlib-runtime", action="store_true", help="also time dlib-resnet run by dlib itself")
    args = ap.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    wanted = lambda name: args.only is None or name in args.only  # noqa: E731
    paths = sorted((args.lfw / "images").glob("*/*_0001.jpg"))[:: max(1, 5749 // args.images)][: args.images]
    images = [load_image(p) for p in paths]
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}",
        "threads": runtime.threads(),
        "clock": args.clock,
        "load_average": os.getloadavg(),
        "images": len(images),
        "detectors": {},
        "embedders": {},
    }
    for name in filter(wanted, detector_names()):
        t = time.perf_counter()
        det = get_detector(name)
        load = time.perf_counter() - t
        report["detectors"][name] = {"ms_per_image": round(_median_ms(det.detect, images), 2), "load_s": round(load, 2)}
        print(name, report["detectors"][name], flush=True)
    mtcnn = get_detector("mtcnn")
    faces = [(im, f[0]) for im in images if (f := mtcnn.detect(im))]
    for name in [*filter(wanted, embedder_names()), *(["dlib-runtime"] if args.dlib_runtime else [])]:
        t = time.perf_counter()
        emb = DlibRuntime() if name == "dlib-runtime" else get_embedder(name)
        name, load = emb.name, time.perf_counter() - t
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
