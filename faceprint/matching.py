"""Matching: distances between faceprints and the decisions made from them.

All embedders give unit vectors, so cosine distance (``1 - a.b``, in [0, 2]) is the common
scale and thresholds are stored in it; Euclidean distance is ``sqrt(2 * cosine)`` on the same
vectors, offered because dlib/face_recognition users think in it (their 0.6 is cosine 0.18).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Metric = Literal["cosine", "euclidean"]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances between rows of ``a`` (N, D) and ``b`` (M, D): an (N, M) array.

    One matrix product, so a gallery of thousands is searched in a single BLAS call.
    """
    a = np.atleast_2d(np.asarray(a, np.float32))
    b = np.atleast_2d(np.asarray(b, np.float32))
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)


def to_metric(cosine: np.ndarray | float, metric: Metric) -> np.ndarray | float:
    """Express a cosine distance (or threshold) in ``metric``."""
    if metric == "cosine":
        return cosine
    if metric == "euclidean":
        return np.sqrt(2.0 * np.asarray(cosine))
    raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")


@dataclass(frozen=True)
class Verification:
    """The answer to "are these two faces the same person?"."""

    same: bool
    distance: float
    threshold: float
    embedder: str
    metric: Metric = "cosine"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["distance"] = round(float(self.distance), 6)
        d["threshold"] = round(float(self.threshold), 6)
        return d


def verify_vectors(a: np.ndarray, b: np.ndarray, threshold: float, embedder: str,
                   metric: Metric = "cosine") -> Verification:
    """Decide from two unit vectors; ``threshold`` is in cosine distance whatever ``metric`` reports."""
    d = float(cosine_distance(a, b)[0, 0])
    return Verification(
        same=d <= threshold,
        distance=float(to_metric(d, metric)),
        threshold=float(to_metric(threshold, metric)),
        embedder=embedder,
        metric=metric,
    )
