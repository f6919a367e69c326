"""Overlap of boxes, the one measure detectors (NMS), the gallery (a face picked by box) and the video
tracker share; and the region round a box that face chips and thumbnails cut."""

from __future__ import annotations

import numpy as np


def overlap(a: np.ndarray, b: np.ndarray, mode: str = "union") -> np.ndarray:
    """Pairwise overlap of ``(N, 4)`` and ``(M, 4)`` ``(x1, y1, x2, y2)`` boxes, ``(N, M)``.

    ``mode="union"``: intersection over union (IoU); ``"min"``: intersection over the smaller box,
    which also counts a small box inside a big one as overlapping fully. 0 where both are empty.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    if mode == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    elif mode == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        raise ValueError(f"mode must be 'union' or 'min', not {mode!r}")
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


def widened(box, margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pixel bounds ``(x1, y1, x2, y2)`` of ``box`` widened by ``margin`` of its width and height on
    each side, outward to whole pixels and clipped to an image of ``shape`` (rows, columns, ...)."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = shape[:2]
    return max(0, int(x1 - mx)), max(0, int(y1 - my)), min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
