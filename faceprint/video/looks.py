"""Cheap per-frame measures that tell the engine when to look again: whether the face under a track
still looks like it did, and whether the shot changed (how good a face is for recognition is the
``video`` model of ``analysis.quality``).

An embedding costs 10-30 ms a face on a 2-core machine; these cost well under a millisecond, so
they run on every frame and decide when an embedding is worth its price.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Image

#: A face's ``video_quality`` (0-1) from this up is one whose identification can be trusted: it may
#: give or drop a name on its own, and frame-by-frame identification of it counts as a confident answer.
GOOD = 0.5
#: Side of the grey thumbnail a face's look is kept as; grid of its colour histogram (hue x saturation).
_THUMB, _HIST = 16, (8, 4)
#: A face still looks like the track's last look while its thumbnail correlates at least this
#: much and its colour histogram overlaps at least this much (both 1.0 for the same pixels).
SAME_SHAPE, SAME_COLOUR = 0.55, 0.6
#: Whole-frame change (0-1) from which a frame may be a cut (then the faces under the tracks decide)
#: and from which it is one whatever the faces say.
MAYBE_CUT, SURE_CUT = 0.15, 0.5


def look(image: Image, box) -> np.ndarray | None:
    """A face's appearance: a zero-mean, unit-norm grey thumbnail of the box's middle and its
    hue/saturation histogram, concatenated; None for a box off the frame."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    x1, x2 = int(max(x1 + 0.1 * w, 0)), int(min(x2 - 0.1 * w, image.shape[1]))
    y1, y2 = int(max(y1 + 0.1 * h, 0)), int(min(y2 - 0.1 * h, image.shape[0]))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    crop = cv2.resize(image[y1:y2, x1:x2], (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32).ravel()
    grey -= grey.mean()
    grey /= max(float(np.linalg.norm(grey)), 1e-6)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(_HIST), [0, 180, 0, 256]).ravel()
    return np.concatenate([grey, hist / max(float(hist.sum()), 1e-6)])


def same_look(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two looks are of the same face (None, no look to compare: yes, nothing says otherwise)."""
    if a is None or b is None:
        return True
    n = _THUMB * _THUMB
    shape = float(a[:n] @ b[:n])
    colour = float(np.minimum(a[n:], b[n:]).sum())
    return shape >= SAME_SHAPE and colour >= SAME_COLOUR


class ShotChange:
    """Whole-frame change between consecutive frames, 0-1: the mean of a colour-histogram distance
    and a downscaled frame difference. A camera pan moves pixels but keeps the colours; lighting
    drift shifts colours slowly; only a cut changes both at once."""

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, image: Image) -> float:
        step = max(1, min(image.shape[:2]) // 90)  # subsample first: a full-size resize costs ms at 1080p
        small = cv2.resize(np.ascontiguousarray(image[::step, ::step]), (48, 27), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        hist /= max(float(hist.sum()), 1e-6)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        prev, self._prev = self._prev, (hist, grey)
        if prev is None:
            return 0.0
        colour = 0.5 * float(np.abs(hist - prev[0]).sum())  # total variation, 0-1
        pixels = float(np.abs(grey - prev[1]).mean()) / 64.0  # a quarter of full scale counts as all
        return min(1.0, (colour + min(pixels, 1.0)) / 2)

    def reset(self) -> None:
        self._prev = None
