"""ONNX Runtime against OpenVINO on faceprint's own model files, one thread, one image at a time.

    python benchmarks/runtimes.py --lfw ../shared/datasets/lfw --out benchmarks/results/runtimes.json

Per model, each runtime's session on the same file, called in turn on the same input (so both
share whatever load the machine has); then the default pipeline (detect, align, embed every face)
end to end on LFW photos, each photo through both runtimes in turn, with the largest difference
in boxes and faceprints. Medians and 10th percentiles in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ["FACEPRINT_THREADS"] = "1"  # before faceprint reads it: one thread, as each worker of speed.py

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import cpu_model  # noqa: E402

RUNTIMES = ("onnxruntime", "openvino")


def _made(runtime: str, make):
    os.environ["FACEPRINT_RUNTIME"] = runtime
    try:
        return make()
    finally:
        os.environ.pop("FACEPRINT_RUNTIME")


def _stats(seconds: list[float]) -> dict:
    return {"median_ms": round(float(np.median(seconds)) * 1000, 2),
            "p10_ms": round(float(np.quantile(seconds, 0.1)) * 1000, 2)}


def models(repeats: int) -> dict:
    """Each model alone on a fixed input of its own shape (batch 1; ONet on 4 boxes, as for a small group)."""
    from faceprint.detection.blazeface import BlazeFace
    from faceprint.detection.mtcnn import MTCNN
    from faceprint.embedding.dlib_resnet import DlibResNet
    from faceprint.embedding.expo_mobilefacenet import ExpoMobileFaceNet
    from faceprint.embedding.faceplugin import FacePlugin

    rng = np.random.default_rng(0)
    cases = {"faceplugin": (lambda: FacePlugin()._session, (1, 3, 112, 112)),
             "expo-mobilefacenet": (lambda: ExpoMobileFaceNet()._session, (1, 3, 112, 112)),
             "dlib-resnet": (lambda: DlibResNet()._session, (1, 150, 150, 3)),
             "blazeface": (lambda: BlazeFace()._session, None),
             "mtcnn-onet": (lambda: MTCNN()._sessions["onet"], (4, 3, 48, 48))}
    out = {}
    for name, (make, shape) in cases.items():
        sessions = {r: _made(r, make) for r in RUNTIMES}
        inp = sessions["onnxruntime"].get_inputs()[0]
        shape = shape or tuple(1 if isinstance(d, str) else d for d in inp.shape)
        feed = {inp.name: rng.standard_normal(shape).astype(np.float32)}
        first = {r: s.run(None, feed)[0] for r, s in sessions.items()}
        times = {r: [] for r in RUNTIMES}
        for _ in range(repeats):
            for r, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feed)
                times[r].append(time.perf_counter() - start)
        out[name] = {"input": list(shape), **{r: _stats(t[5:]) for r, t in times.items()},
                     "max_abs_difference": float(np.abs(first["onnxruntime"] - first["openvino"]).max())}
        print(name, json.dumps(out[name]), flush=True)
    return out


def pipeline(lfw: Path, photos: int) -> dict:
    """The default pipeline on every n-th LFW photo: detect and embed, per runtime, photo by photo."""
    from faceprint.detection.blazeface_mtcnn import BlazeFaceMTCNN
    from faceprint.embedding.faceplugin import FacePlugin
    from faceprint.imageio import load_image

    paths = sorted((lfw / "images").glob("*/*.jpg"))
    paths = paths[::max(1, len(paths) // photos)][:photos]
    pipes = {r: _made(r, lambda: (BlazeFaceMTCNN(), FacePlugin())) for r in RUNTIMES}
    times = {r: {"detect": [], "embed": []} for r in RUNTIMES}
    box_diff = vector_diff = 0.0
    faces_found = 0
    for path in paths:
        image = load_image(path)
        found = {}
        for r, (detector, embedder) in pipes.items():
            start = time.perf_counter()
            faces = detector.detect(image)
            mid = time.perf_counter()
            vectors = embedder.embed_faces(image, faces) if faces else np.zeros((0, 1))
            times[r]["detect"].append(mid - start)
            times[r]["embed"].append(time.perf_counter() - mid)
            found[r] = (faces, vectors)
        (fa, va), (fb, vb) = found["onnxruntime"], found["openvino"]
        if len(fa) != len(fb):
            raise SystemExit(f"{path}: {len(fa)} faces on ONNX Runtime, {len(fb)} on OpenVINO")
        faces_found += len(fa)
        if fa:
            box_diff = max(box_diff, float(np.abs(np.array([f.box for f in fa]) - [f.box for f in fb]).max()))
            vector_diff = max(vector_diff, float((1.0 - np.sum(va * vb, axis=1)).max()))
    per = {r: {stage: round(float(np.mean(t)) * 1000, 2) for stage, t in st.items()} for r, st in times.items()}
    for r in per:
        per[r]["total"] = round(per[r]["detect"] + per[r]["embed"], 2)
    return {"photos": len(paths), "faces": faces_found, "mean_ms_per_photo": per,
            "max_box_difference_px": round(box_diff, 5), "max_cosine_distance": vector_diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtimes.json")
    args = ap.parse_args()
    import onnxruntime
    import openvino

    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
              "versions": {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__},
              "threads": 1, "models": models(args.repeats), "pipeline": pipeline(args.lfw, args.photos),
              "load_avg_1min_at_end": round(os.getloadavg()[0], 2)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["pipeline"], indent=1))


if __name__ == "__main__":
    main()
