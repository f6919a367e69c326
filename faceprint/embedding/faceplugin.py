"""The recognition network shipped in the npm package ``faceplugin-face-recognition-js``.

A 50-convolution PReLU network (a PyTorch export, 112x112 -> 512-d) that is already ONNX; our
only conversion frees its batch dimension so a whole batch runs in one call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..alignment import ARCFACE_112
from . import OnnxEmbedder


def free_batch(path: Path) -> bytes:
    """The model with a symbolic batch dimension: ``N`` on input and output, Reshape keeping dim 0."""
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0  # ONNX Reshape: 0 copies the input's dim, i.e. the batch
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


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
    convert = staticmethod(free_batch)

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        return ((crops[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
