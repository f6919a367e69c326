"""FaceNet (davidsandberg Inception-ResNet-v1, 20180408-102900, CASIA-WebFace), 512-d.

The frozen TensorFlow graph is converted to ONNX once by :mod:`faceprint.zoo.tfgraph` (batch
dim freed, so a whole batch runs in one call) and run with onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..alignment import ARCFACE_112, scaled_template
from . import OnnxEmbedder

#: FaceNet saw MTCNN boxes plus a margin, not 5-point-aligned crops, so the face sits a little
#: smaller in the frame than on the ArcFace template. LFW fold 1, dlib eye alignment, best-threshold
#: accuracy by zoom: 0.7 92.0%, 0.8 95.3%, 0.9 96.2%, 1.0 95.5%, 1.1 94.5%; with MTCNN five-point
#: alignment 0.8 95.7%, 0.9 96.5%, 1.0 96.0%.
ZOOM = 0.9


def convert_facenet(pb: Path) -> bytes:
    """ONNX bytes for the zoo's FaceNet graph, NHWC input ``input`` with a free batch dim."""
    from ..zoo.tfgraph import convert_graphdef

    return convert_graphdef(pb, ["embeddings"], input_shapes={"input": ["N", 160, 160, 3]},
                            output_names=["embedding"], free_batch=True)


def prewhiten(x: np.ndarray) -> np.ndarray:
    """Per-image standardisation, as FaceNet was trained: (x - mean) / max(std, 1/sqrt(n))."""
    x = x.astype(np.float32)
    axes = tuple(range(1, x.ndim))
    n = np.prod(x.shape[1:])
    mean = x.mean(axis=axes, keepdims=True)
    std = np.maximum(x.std(axis=axes, keepdims=True), 1.0 / np.sqrt(n))
    return ((x - mean) / std).astype(np.float32)


class FaceNet(OnnxEmbedder):
    """160x160 RGB crops, prewhitened here.

    ``flip`` averages each crop's embedding with its mirror image's. On by default: on LFW folds
    1-2 it never hurt and helped a little (MTCNN landmarks 96.75% -> 97.0%, dlib landmarks
    96.25% -> 96.67% best-threshold accuracy), for about 1.4-2x the time per face.
    """

    name = "facenet"
    size = 160
    template = scaled_template(ARCFACE_112, 112, 160, zoom=ZOOM)
    dims = 512
    flip = True
    convert = staticmethod(convert_facenet)

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        return prewhiten(crops)
