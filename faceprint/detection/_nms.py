"""Greedy non-maximum suppression in numpy, shared by the detectors.

Every detector here proposes overlapping boxes for one face; NMS keeps the best-scoring box and
drops the others that overlap it too much. The loop runs once per *kept* box and compares it
with all remaining boxes in one vectorised step, so thousands of proposals cost milliseconds.
"""

from __future__ import annotations

import numpy as np

from ..boxes import overlap


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

    order = np.argsort(-scores, kind="stable")
    if len(boxes) <= _MATRIX_MAX:
        return _nms_matrix(boxes[order], iou_threshold, mode, order)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[overlap(boxes[i], boxes[rest], mode)[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


#: Up to this many boxes, all pairwise overlaps are computed in one step (an 8 MB matrix at most);
#: above it, the loop above (memory linear in the boxes). MTCNN calls NMS ~11 times per image on
#: ~20 boxes (at most a few hundred): on 200 LFW images the loop's per-box numpy calls cost
#: 2.4 ms per image, the matrix 0.85 ms (of ~20 ms for detection), with identical results.
_MATRIX_MAX = 1024


def _nms_matrix(boxes: np.ndarray, iou_threshold: float, mode: str, order: np.ndarray) -> np.ndarray:
    """The same greedy NMS on boxes already sorted by score, from one pairwise-overlap matrix."""
    pairs = overlap(boxes, boxes, mode)
    # Row k as a Python integer bit mask of the boxes that box k suppresses: the greedy pass is
    # then one integer OR per kept box instead of several numpy calls.
    packed = np.packbits(pairs > iou_threshold, axis=1, bitorder="little")
    suppressed, keep = 0, []
    for k, row in enumerate(packed):
        if not (suppressed >> k) & 1:
            keep.append(k)
            suppressed |= int.from_bytes(row.tobytes(), "little")
    return order[np.asarray(keep, dtype=np.intp)]


__all__ = ["nms"]
