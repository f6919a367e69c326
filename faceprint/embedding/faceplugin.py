"""The recognition network shipped in the npm package ``faceplugin-face-recognition-js``.

A 50-convolution PReLU network (a PyTorch export, 112x112 -> 512-d) that is already ONNX; our
only conversion frees its batch dimension so a whole batch runs in one call.
"""

from __future__ import annotations

from pathlib import Path

from ..alignment import ARCFACE_112
from ..zoo.batch import free_batch
from . import OnnxEmbedder


def _convert(path: Path) -> bytes:
    return free_batch(path.read_bytes())


class FacePlugin(OnnxEmbedder):
    """112x112 crops on the ArcFace template, fed as BGR, ``(x - 127.5) / 128``, NCHW.

    BGR because the network was evidently trained on OpenCV-decoded images. LFW 10-fold with
    MTCNN alignment: 99.43% fed BGR, 99.13% fed RGB, 99.20% RGB with flip averaging; flip is
    off by default since it doubles the cost for no measured gain over BGR.
    """

    name = "faceplugin"
    size = 112
    template = ARCFACE_112
    dims = 512
    flip = False
    convert = staticmethod(_convert)

    channels, mean, scale = "BGR", 127.5, 1 / 128.0
