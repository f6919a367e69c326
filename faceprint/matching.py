"""Matching: distances between faceprints and the decisions made from them.

All embedders give unit vectors, so cosine distance (``1 - a.b``, in [0, 2]) is the common
scale and thresholds are stored in it; Euclidean distance is ``sqrt(2 * cosine)`` on the same
vectors, offered because dlib/face_recognition users think in it (their 0.6 is cosine 0.18).
"""

from __future__ import annotations

import functools
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


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (one vector, or one per row) scaled to unit length, as every faceprint is; a zero row stays zero."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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


#: Strangers a gallery may name by default: at most 1 in 100, whatever the gallery's size.
DEFAULT_FPIR = 0.01
#: The loosest per-comparison false-accept rate the default goes to, however small the gallery:
#: the embedder's ``identify_threshold``, so a gallery of a few people does not get looser than it was.
DEFAULT_MAX_FAR = 1e-4


def comparison_far(gallery_size: int, fpir: float) -> float:
    """The false-accept rate per comparison at which a stranger, compared with ``gallery_size``
    faces, is named with probability ``fpir``: ``1 - (1 - far) ** size = fpir``.

    This treats the comparisons as independent. A stranger who resembles one enrolled face
    resembles few others, so real galleries name fewer strangers than this (the bound is
    conservative): measured in docs/benchmarks.md (Open-set identification).
    """
    if not 0.0 < fpir < 1.0:
        raise ValueError(f"fpir must be between 0 and 1 (exclusive), not {fpir}")
    return float(-np.expm1(np.log1p(-fpir) / max(int(gallery_size), 1)))


def open_set_threshold(far_thresholds: tuple[tuple[float, float], ...], gallery_size: int,
                       fpir: float | None = None) -> float:
    """The identification threshold (cosine distance) that names at most ``fpir`` of strangers in
    a gallery of ``gallery_size`` faces, from an embedder's measured ``far_thresholds``.

    ``fpir`` None is the default policy: ``DEFAULT_FPIR``, and never looser than FAR
    ``DEFAULT_MAX_FAR`` per comparison. The threshold is interpolated in log FAR between the
    measured points, and past the loosest one it stays at that point. Past the strictest one
    (galleries beyond about 10,000 faces at 1%) it follows a normal tail: the line through every
    measured point against the normal deviate of its FAR (impostor similarities are close to normal
    over the measured range), never looser than the strictest point. Extending the last segment
    instead let the one or two noisiest points (a few impostor pairs, some of them one person
    filed under two names) set the slope: on tables measured on half of LFW it reached 0 by a
    million faces, naming nobody (docs/benchmarks.md, Open-set identification).
    """
    if not far_thresholds:
        raise ValueError("this embedder has no measured false-accept rates to pick a threshold from")
    return _open_set_threshold(tuple((float(f), float(t)) for f, t in far_thresholds), int(gallery_size), fpir)


@functools.lru_cache(maxsize=1024)
def _open_set_threshold(far_thresholds: tuple[tuple[float, float], ...], gallery_size: int,
                        fpir: float | None) -> float:
    """``open_set_threshold``, remembered: a gallery asks on every search (the video engine on
    every frame), and past the measured table the fit costs about 0.1 ms."""
    far = comparison_far(gallery_size, DEFAULT_FPIR if fpir is None else fpir)
    if fpir is None:
        far = min(far, DEFAULT_MAX_FAR)
    fars = np.array([f for f, _ in far_thresholds])
    logs = np.log10(fars)
    values = np.array([t for _, t in far_thresholds])
    x = np.log10(far)
    if x >= logs[0]:
        return float(values[0])
    if x >= logs[-1]:
        return float(np.interp(x, logs[::-1], values[::-1]))
    if len(values) < 2:
        return float(values[-1])
    from scipy.special import ndtri  # only here: most galleries never need it

    slope, intercept = np.polyfit(-ndtri(fars), values, 1)
    return float(max(min(values[-1], intercept + slope * -ndtri(far)), 0.0))
