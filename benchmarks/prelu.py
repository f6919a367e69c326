"""What rewriting PReLU (``faceprint.zoo.prelu``) buys each converted model, side by side in one run.

    python benchmarks/prelu.py --lfw ../shared/datasets/lfw     # -> benchmarks/results/prelu.json

For each model whose conversion rewrites its PReLUs, the graph as converted before the rewrite (its
dead weights zeroed as now: ``benchmarks/dead_weights.py`` times that) and the one faceprint runs
now are timed in turn (ONNX Runtime, one thread, the same inputs: faces of
LFW images aligned or cropped as the model takes them), one batch of 1 and one of 8 per round,
``--rounds`` rounds alternating which goes first; the median per face is reported, with a check
that both give the same outputs to the last bit.
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

import numpy as np
from _common import cpu_model  # beside this script

from faceprint import zoo
from faceprint.alignment import align
from faceprint.detection import get_detector
from faceprint.detection.mtcnn import _crops, _graph, _normalise
from faceprint.embedding import get_embedder
from faceprint.imageio import load_image
from faceprint.lfw import central
from faceprint.zoo.batch import free_batch
from faceprint.zoo.tflite import tflite_to_onnx
from faceprint.zoo.weights import zero_dead_weights

ROOT = Path(__file__).resolve().parents[1]


def _models(images: list, faces: list) -> dict[str, tuple[bytes, bytes, np.ndarray]]:
    """name -> (graph before the rewrite, graph now, a batch of 8 inputs)."""
    from faceprint.analysis import get_model
    from faceprint.analysis._crops import box_like, stretched_crop

    out = {}
    for name, before in (("faceplugin", lambda p: zero_dead_weights(free_batch(p.read_bytes()))),
                         ("expo-mobilefacenet", lambda p: free_batch(tflite_to_onnx(p)))):
        emb = get_embedder(name)
        x = emb._prepare(np.stack([align(i, f, emb.template, emb.size).pixels for i, f in zip(images, faces)]))
        out[name] = (before(zoo.get(name).path(emb.source)), emb.model_path.read_bytes(), x)
    mtcnn = get_detector("mtcnn")
    boxes = np.array([np.round(f.box).astype(int) for f in faces])
    for key, side in (("rnet", 24), ("onet", 48)):
        x = np.concatenate([_normalise(_crops(i, b[None], side)) for i, b in zip(images, boxes)])
        out[f"mtcnn-{key}"] = (_graph(key, zoo.get("mtcnn").path(key)), mtcnn.model_paths[key].read_bytes(), x)
    live = get_model("liveness")
    x = np.stack([stretched_crop(i, box_like(f, "fr_detect"), 2.7, 128).astype(np.float32).transpose(2, 0, 1)
                  for i, f in zip(images, faces)])
    spec = zoo.get("fr-liveness")
    out["fr-liveness"] = (spec.path(live.source).read_bytes(), spec.converted(live.source, live.convert).read_bytes(), x)
    return out


def compare(before: bytes, after: bytes, x: np.ndarray, rounds: int) -> dict:
    """Two graphs of one model timed in turn on ``x`` (one thread each), with whether their outputs are equal."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(m, options, providers=["CPUExecutionProvider"]) for m in (before, after)]
    name_in = [s.get_inputs()[0].name for s in sessions]
    batches = (1, 8) if isinstance(sessions[0].get_inputs()[0].shape[0], str) else (1,)  # fr-liveness: 1
    x = x[:max(batches)]
    same = all(np.array_equal(a, b) for a, b in zip(*(s.run(None, {i: x}) for s, i in zip(sessions, name_in))))
    times: dict[tuple[int, int], list[float]] = {(k, n): [] for k in (0, 1) for n in batches}
    for r in range(rounds):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            for n in batches:
                t = time.perf_counter()
                sessions[k].run(None, {name_in[k]: x[:n]})
                times[k, n].append((time.perf_counter() - t) / n * 1000)
    med = {key: round(statistics.median(v[len(v) // 10:]), 3) for key, v in times.items()}  # first rounds warm up
    return {"identical_outputs": same,
            **{f"{label}_ms_per_face": {f"batch {n}": med[k, n] for n in batches}
               for k, label in ((0, "before"), (1, "after"))},
            "speedup": {f"batch {n}": round(med[0, n] / med[1, n], 2) for n in batches}}


def arguments(description: str, out: str) -> tuple[argparse.Namespace, list, list]:
    """The command line of a script that times graph pairs, and its 8 LFW images with their central faces."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / out)
    args = ap.parse_args()
    paths = sorted((args.lfw / "images").glob("*/*_0001.jpg"))[::500][:8]
    images = [load_image(p) for p in paths]
    return args, images, [central(get_detector().detect(i), i.shape) for i in images]


def main() -> None:
    args, images, faces = arguments(__doc__.split("\n")[0], "prelu.json")
    rows = {}
    for name, (before, after, x) in _models(images, faces).items():
        rows[name] = compare(before, after, x, args.rounds)
        print(name, json.dumps(rows[name]), flush=True)
    write_report(args.out, rows)


def write_report(out: Path, rows: dict) -> None:
    import onnxruntime as ort

    report = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "onnxruntime": ort.__version__},
              "date": time.strftime("%Y-%m-%d"), "load_average": [round(v, 2) for v in os.getloadavg()],
              "models": rows}
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
