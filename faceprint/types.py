"""The few typed values that flow between stages: image -> Face -> AlignedFace -> Embedding."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

#: An image is an ``HxWx3`` ``uint8`` RGB array; every stage takes and returns this layout.
Image = np.ndarray

#: What an entry point accepts as an image: a decoded array, encoded bytes, or a file path
#: (``faceprint.imageio.load_image`` turns any of them into an ``Image``).
ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

#: ``(x1, y1, x2, y2)`` in pixels.
Box = tuple[float, float, float, float]

#: Names of the landmark points any stage may use. Detectors fill what they can; alignment
#: uses the points a detector and an embedder's template have in common.
LANDMARK_NAMES = (
    "left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "mouth", "nose_base", "left_ear", "right_ear",
)


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    ``left_eye`` is the eye on the left side of the image (the subject's right eye).
    """

    box: Box
    score: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    detector: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def scaled(self, k: float) -> Face:
        """This face in the image resized by ``k`` (e.g. ``k`` = 2: back from a half-size copy)."""
        if k == 1:
            return self
        return replace(self, box=tuple(v * k for v in self.box),
                       landmarks={n: (x * k, y * k) for n, (x, y) in self.landmarks.items()})

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": {k: [round(float(x), 1), round(float(y), 1)] for k, (x, y) in self.landmarks.items()},
        }


@dataclass(frozen=True)
class AlignedFace:
    """A face warped onto an embedder's canonical crop."""

    pixels: Image
    face: Face
    matrix: np.ndarray  # 2x3 affine map from source image to crop


@dataclass(frozen=True)
class Embedding:
    """A face's "faceprint": an L2-normalised vector, tagged with the model that made it.

    Embeddings from different models live in different spaces and are never compared.
    """

    vector: np.ndarray
    model: str
    face: Face | None = None

    def __post_init__(self) -> None:
        if self.vector.ndim != 1:
            raise ValueError("an embedding is a 1-d vector")

