"""``faceprint export``: a pipeline as a self-contained bundle for a device or another program.

A bundle is a folder: the detector's ONNX files (one per network, ``detector-<role>.onnx``) and the
embedder's (``embedder.onnx``), ``bundle.json`` (each file's SHA-256, the detector's inputs and
decoding, the alignment template, the embedder's input normalisation and its threshold) and
``runner.py``, a reference runner that needs only onnxruntime, numpy and OpenCV and gives
faceprint's answers (tests/test_export.py checks it in a clean virtualenv on LFW pairs). Two
pipelines can be exported: ``default`` (BlazeFace full range, tiled on large images, with MTCNN's
ONet placing the landmarks, the full MTCNN cascade as the fallback where that finds nothing and
RetinaFace where that finds nothing either; faceplugin) and ``fast`` (BlazeFace short range + expo MobileFaceNet).

Formats: ``onnx`` (float32, what faceprint runs) and ``tflite``: the ``.tflite`` files the fast
pipeline's two networks are published as (faceprint converts them to ONNX for itself), byte for
byte, for devices that run LiteRT (``ai-edge-litert``); the runner picks the runtime by each file's
suffix. The default pipeline has no TFLite form (MTCNN's weights are numpy arrays, RetinaFace's a TF graph,
faceplugin's an ONNX file). int8 bundles are not offered: no int8 model paid for itself here (docs/models.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import zoo
from ..atomic import atomic_file
from ..errors import FaceprintError
from ..zoo import sha256_of

#: Exportable pipelines: name -> (detector, embedder).
PIPELINES = {"default": ("blazeface-mtcnn", "faceplugin"), "fast": ("blazeface-short", "expo-mobilefacenet")}
#: Pipelines whose every network is published as a ``.tflite`` file (``--format tflite``).
TFLITE = ("fast",)
#: ``bundle.json``'s schema; 2: the detector's files in a ``models`` map (1 had one ``model``).
FORMAT = "faceprint.bundle/2"
FORMATS = ("onnx", "tflite")
_RUNNER = Path(__file__).with_name("runner.py")


def export(target: Path | str, pipeline: str = "fast", fmt: str = "onnx") -> Path:
    """Write the bundle for ``pipeline`` into the folder ``target`` (made if missing; an earlier
    bundle there is replaced, its model files that this one lacks removed) and return the path
    of its ``bundle.json``. ``fmt``: ``onnx``, or ``tflite`` for a pipeline in ``TFLITE``."""
    from .. import __version__
    from ..detection import get_detector
    from ..embedding import get_embedder

    if pipeline not in PIPELINES:
        raise FaceprintError(f"unknown pipeline {pipeline!r}: one of {', '.join(PIPELINES)}")
    if fmt not in FORMATS:
        raise FaceprintError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)} (int8 is not offered)")
    if fmt == "tflite" and pipeline not in TFLITE:
        raise FaceprintError(f"the {pipeline} pipeline's networks are not all published as TFLite files: "
                             f"--format tflite is offered for {', '.join(TFLITE)}")
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FaceprintError(f"{target}: exists and is not a folder")
    detector_name, embedder_name = PIPELINES[pipeline]
    detector_models, detector = get_detector(detector_name).export_spec()
    embedder_model, embedder = get_embedder(embedder_name).export_spec()
    if fmt == "tflite":
        detector_models, embedder_model = _tflite(detector_name, embedder_name)
        detector["blazeface"]["nchw"] = embedder["nchw"] = False  # TFLite runs them NHWC
        embedder["input"] = embedder["input"].replace("NCHW", "NHWC")
    target.mkdir(parents=True, exist_ok=True)
    names = {role: f"detector-{role}.{fmt}" for role in detector_models}
    sources = [(path, names[role]) for role, path in detector_models.items()]
    files = {}
    for source, name in (*sources, (embedder_model, f"embedder.{fmt}"), (_RUNNER, "runner.py")):
        with atomic_file(target / name) as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        files[name] = sha256_of(source)
    spec = {"format": FORMAT, "faceprint": __version__, "pipeline": pipeline,
            "detector": {"name": detector_name, "models": names, **detector},
            "embedder": {"name": embedder_name, "model": f"embedder.{fmt}", **embedder},
            "files": files}
    with atomic_file(target / "bundle.json") as out:
        out.write((json.dumps(spec, indent=1) + "\n").encode())
    earlier = {*target.glob("detector*.onnx"), *target.glob("detector*.tflite"), *target.glob("embedder.*")}
    for stale in earlier - {target / name for name in files}:
        stale.unlink()  # an earlier bundle's model files (another pipeline's or format's, or format 1's detector.onnx)
    return target / "bundle.json"


def _tflite(detector_name: str, embedder_name: str) -> tuple[dict[str, Path], Path]:
    """The networks of a pipeline in ``TFLITE`` as the ``.tflite`` files the zoo fetched (faceprint
    runs their ONNX conversions)."""
    detector, embedder = zoo.get(detector_name).path("model"), zoo.get(embedder_name).path("model")
    for name, path in ((detector_name, detector), (embedder_name, embedder)):
        if path.suffix != ".tflite":
            raise FaceprintError(f"{name}'s network is not a TFLite file ({path.name})")
    return {"blazeface": detector}, embedder
