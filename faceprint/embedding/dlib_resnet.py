"""dlib's ResNet-29 face descriptor (the model behind face_recognition), on our own aligned chips."""

from __future__ import annotations

import dlib
import numpy as np

from .. import zoo
from ..alignment import DLIB_150
from . import Embedder


class DlibResNet(Embedder):
    """128-d, trained with a metric loss where Euclidean distance 0.6 separates people.

    dlib returns vectors of norm ~1 already; we renormalise so all embedders share cosine geometry.
    """

    name = "dlib-resnet"
    size = 150
    template = DLIB_150
    dims = 128

    def __init__(self) -> None:
        self._net = dlib.face_recognition_model_v1(str(zoo.get(self.name).path("model")))

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        return np.array([np.array(v) for v in self._net.compute_face_descriptor(list(crops))])
