"""Greedy non-maximum suppression in numpy, shared by the detectors.

Every detector here proposes overlapping boxes for one face; NMS keeps the best-scoring box and
drops the others that overlap it too much. The loop runs once per *kept* box and compares it
with all remaining boxes in one vectorised step, so thousands of proposals cost milliseconds.
"""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, mode: str = "union") -> np.ndarray:
    """Indices of the boxes to keep, in descending score order.

    ``boxes`` is ``Nx4`` ``(x1, y1, x2, y2)`` in continuous pixel coordinates (width is
    ``x2 - x1``). A box is dropped when its overlap with a better kept box exceeds
    ``iou_threshold``. ``mode="union"`` measures overlap as intersection over union (the usual
    IoU); ``mode="min"`` divides by the smaller box's area instead, which also removes a small
    box lying inside a bigger one (MTCNN's last stage uses it to drop nested duplicates).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if mode not in ("union", "min"):
        raise ValueError(f"mode must be 'union' or 'min', not {mode!r}")
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)

    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        if mode == "union":
            denom = areas[i] + areas[rest] - inter
        else:
            denom = np.minimum(areas[i], areas[rest])
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


__all__ = ["nms"]
