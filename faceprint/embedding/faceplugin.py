"""The recognition network shipped in the npm package ``faceplugin-face-recognition-js``.

A 50-convolution PReLU network (a PyTorch export, 112x112 -> 512-d) that is already ONNX; our
conversion frees its batch dimension so a whole batch runs in one call, rewrites its PReLUs into
ops ONNX Runtime runs fast (``zoo.prelu``), and zeroes the 196,000 weights too small to count,
which made it ten times slower on Intel CPUs (``zoo.weights``): the same output, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

from ..alignment import ARCFACE_112
from ..zoo.batch import free_batch
from ..zoo.prelu import prelu_as_convs
from ..zoo.weights import zero_dead_weights
from . import OnnxEmbedder


def _convert(path: Path) -> bytes:
    return zero_dead_weights(prelu_as_convs(free_batch(path.read_bytes())))


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
    converter_revision = 3  # 2: PReLUs rewritten, 3: dead weights zeroed (same vectors, faster)

    channels, mean, scale = "BGR", 127.5, 1 / 128.0
