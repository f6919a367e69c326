"""dlib's ResNet-29 face descriptor (the model behind face_recognition), on our own aligned chips.

dlib's own runtime takes ~63 ms a face here (no BLAS in the wheel); the same weights converted to
ONNX (``faceprint.zoo.dlib_dnn``) give the same 128-d vectors (max difference ~3e-7, checked in
``tests/test_dlib_dnn.py`` against dlib itself) in a fraction of the time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..alignment import DLIB_150
from . import OnnxEmbedder


def _convert(path: Path) -> bytes:
    """dlib's ``.dat`` to ONNX, on first use only: the converter loads onnx, which running the
    converted model does not need."""
    from ..zoo.dlib_dnn import to_onnx

    return to_onnx(path)


class DlibResNet(OnnxEmbedder):
    """128-d, trained with a metric loss where Euclidean distance 0.6 separates people.

    The model normalises RGB 0..255 itself (dlib's channel means, / 256). dlib returns vectors
    of norm ~1.4; we renormalise so all embedders share cosine geometry.
    """

    name = "dlib-resnet"
    size = 150
    template = DLIB_150
    dims = 128
    revision = 2  # 1: dlib's runtime; 2: the ONNX conversion (vectors equal to ~1e-6)
    convert = staticmethod(_convert)

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        return crops.astype(np.float32)


class DlibResNetInt8(DlibResNet):
    """The converted network quantised to int8, calibrated on LFW DevTrain faces (docs/models.md)."""

    name = "dlib-resnet-int8"
    precision = "int8"
