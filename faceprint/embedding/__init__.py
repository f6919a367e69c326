"""Embedding: map aligned face crops to L2-normalised vectors.

Each embedder declares the crop it expects (side length and landmark template); the alignment
stage produces exactly that crop, so embedders never see raw images or detector output.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from functools import cache
from typing import ClassVar

import numpy as np

from .. import zoo
from ..errors import ModelError

_EMBEDDERS = {
    "dlib-resnet": "faceprint.embedding.dlib_resnet:DlibResNet",
    "facenet": "faceprint.embedding.facenet:FaceNet",
    "mobilefacenet": "faceprint.embedding.mobilefacenet:MobileFaceNet",
    "faceplugin": "faceprint.embedding.faceplugin:FacePlugin",
}

DEFAULT_EMBEDDER = "faceplugin"


class Embedder(ABC):
    """Turns aligned crops into faceprints.

    Subclasses implement ``_forward`` (the model itself); batching checks and test-time flip
    averaging (each crop's vector summed with its mirror image's, where that measurably helps a
    model) live here once.
    """

    name: ClassVar[str]
    #: side of the square crop, in pixels
    size: ClassVar[int]
    #: where each landmark sits in the crop, in crop pixels (names from ``faceprint.types.LANDMARK_NAMES``)
    template: ClassVar[dict[str, tuple[float, float]]]
    dims: ClassVar[int]
    flip: bool = False

    @property
    def threshold(self) -> float:
        """Cosine distance below which two faces are the same person (calibrated on LFW)."""
        return zoo.get(self.name).threshold

    @property
    def identify_threshold(self) -> float:
        """Stricter cosine distance for 1:N search (FAR 1e-4 on LFW), so strangers stay unknown."""
        return zoo.get(self.name).identify_threshold

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 RGB crops -> ``(N, D)`` float32 rows of unit length."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"{self.name} expects (N, {self.size}, {self.size}, 3) crops, got {crops.shape}")
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.dims), np.float32)
        if self.flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]])
        y = l2_normalize(self._forward(np.ascontiguousarray(crops)))
        return l2_normalize(y[:n] + y[n:]) if self.flip else y

    @abstractmethod
    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """The model on a batch of uint8 RGB crops: one raw vector per crop."""


def embedder_names() -> list[str]:
    return list(_EMBEDDERS)


@cache
def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    try:
        module, cls = _EMBEDDERS[name].split(":")
    except KeyError:
        raise ModelError(f"unknown embedder {name!r}; choose one of: {', '.join(_EMBEDDERS)}") from None
    return getattr(importlib.import_module(module), cls)()


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
