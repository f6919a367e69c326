"""int8 variants of the ONNX embedders: ONNX Runtime static quantisation, calibrated on real faces.

Weights are quantised per output channel (int8, symmetric), activations per tensor (uint8) with
ranges observed on aligned faces, in QDQ form so ONNX Runtime fuses each quantised pattern into
integer kernels. The faces come from LFW's DevTrain people (``peopleDevTrain.txt``, View 1),
leaving out every image that any View 2 test pair uses, so an int8 model's LFW figures are never
measured on images it was calibrated on.

faceprint cannot ship those faces (LFW's images are not ours to redistribute), so building an
int8 model needs an LFW folder, given by ``FACEPRINT_LFW``; without one the conversion stops with
a one-line error saying so. A few faces would not do instead: activation ranges taken from a
handful of crops clip the rest, and the astronaut portrait the self-test uses is one face.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ModelError

log = logging.getLogger("faceprint.zoo.quantize")

#: aligned faces the activation ranges are taken from (one image each of that many DevTrain people)
CALIBRATION_FACES = 256


def lfw_folder() -> Path:
    """The LFW folder named by ``FACEPRINT_LFW``, checked to hold DevTrain's list and the images."""
    value = os.environ.get("FACEPRINT_LFW")
    lfw = Path(value) if value else None
    if lfw is None or not (lfw / "peopleDevTrain.txt").is_file() or not (lfw / "pairs.txt").is_file():
        where = f" ({lfw} has no peopleDevTrain.txt and pairs.txt)" if lfw else ""
        raise ModelError("int8 models are calibrated on faces from LFW's DevTrain people: set FACEPRINT_LFW to "
                         f"an LFW folder holding peopleDevTrain.txt, pairs.txt and images/{where}")
    return lfw


def calibration_images(lfw: Path, count: int = CALIBRATION_FACES) -> list[Path]:
    """One image each of ``count`` DevTrain people (evenly spaced in the list), none used by a View 2 pair."""
    from ..lfw import read_pairs

    in_view2 = {str(p) for pair in read_pairs(lfw) for p in (pair.a, pair.b)}
    images = []
    for line in (lfw / "peopleDevTrain.txt").read_text().split("\n")[1:]:
        if not line.strip():
            continue
        name, n = line.split()
        free = [p for i in range(1, int(n) + 1)
                if str(p := lfw / "images" / name / f"{name}_{i:04d}.jpg") not in in_view2 and p.is_file()]
        if free:
            images.append(free[0])
    step = max(1, len(images) // count)
    return images[::step][:count]


def calibration_crops(template: dict, size: int, count: int = CALIBRATION_FACES) -> np.ndarray:
    """``(N, size, size, 3)`` uint8 crops of the calibration images' central faces, aligned on ``template``."""
    from ..alignment import align
    from ..detection import get_detector
    from ..lfw import central
    from ..imageio import load_image

    paths = calibration_images(lfw_folder(), count)
    detector = get_detector()
    crops = []
    for p in paths:
        image = load_image(p)
        faces = detector.detect(image)
        if faces:
            crops.append(align(image, central(faces, image.shape), template, size).pixels)
    if len(crops) < count // 2:
        raise ModelError(f"only {len(crops)} faces found in {len(paths)} LFW DevTrain images; is FACEPRINT_LFW "
                         "an LFW folder?")
    log.info("calibrating on %d aligned LFW DevTrain faces", len(crops))
    return np.stack(crops)


def quantize(model: bytes, batches: list[np.ndarray]) -> bytes:
    """``model`` (float32 ONNX, one input) quantised to int8 QDQ with activation ranges from ``batches``."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = onnx.load_from_string(model)
    name = proto.graph.input[0].name
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel QuantizeLinear/DequantizeLinear (their axis) came with opset 13
        from onnx import version_converter

        model = version_converter.convert_version(proto, 13).SerializeToString()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self.left, None)
            return None if batch is None else {name: batch}

    with tempfile.TemporaryDirectory(prefix="faceprint-int8-") as tmp:
        src, prepared, out = (Path(tmp) / f for f in ("float.onnx", "prepared.onnx", "int8.onnx"))
        src.write_bytes(model)
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        return out.read_bytes()


def int8_conversion(float_convert: Callable[[Path], bytes], prepare: Callable[[np.ndarray], np.ndarray],
                    template: dict, size: int) -> Callable[[Path], bytes]:
    """A converter of the zoo file to the int8 model: the float conversion, calibrated and quantised."""
    def convert(path: Path) -> bytes:
        crops = calibration_crops(template, size)
        return quantize(float_convert(path), [prepare(crops[i:i + 32]) for i in range(0, len(crops), 32)])

    return convert
