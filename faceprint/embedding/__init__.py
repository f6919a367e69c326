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
}

DEFAULT_EMBEDDER = "mobilefacenet"


class Embedder(ABC):
    """Turns aligned crops into faceprints."""

    name: ClassVar[str]
    #: side of the square crop, in pixels
    size: ClassVar[int]
    #: where each landmark sits in the crop, in crop pixels (names from ``faceprint.types.LANDMARK_NAMES``)
    template: ClassVar[dict[str, tuple[float, float]]]

    @property
    def threshold(self) -> float:
        """Cosine distance below which two faces are the same person (calibrated on LFW)."""
        return zoo.get(self.name).threshold

    @abstractmethod
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 RGB crops -> ``(N, D)`` float32 rows of unit length."""


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
