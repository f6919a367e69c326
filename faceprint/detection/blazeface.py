"""MediaPipe BlazeFace (full range) in onnxruntime: a box and six keypoints per face, fast on a CPU.

The model is MediaPipe's ``face_detection_full_range.tflite``, converted to ONNX once on the
user's machine (``faceprint.zoo.tflite``) and cached by the source file's hash. Everything
MediaPipe does around the network is re-done here in numpy: letterboxing, SSD anchors,
sigmoid scores, box/keypoint decoding and the *weighted* non-maximum suppression that
averages overlapping detections instead of dropping them (``detection._nms.nms`` is the plain
keep-the-best variant and returns only indices, so the blending loop lives here).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import runtime, zoo
from ..errors import FaceprintError, ModelError
from ..types import Face, Image
from . import Detector

#: Keypoints in the order the model emits them, named by image side on an upright face
#: (checked on real faces: the first eye point lies left of the second, ears likewise).
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth", "left_ear", "right_ear")

_RAW_SCORE_CLIP = 100.0  # MediaPipe clips logits to +-100 before the sigmoid
#: Tiled windows start this fraction of their side apart (they overlap by a quarter).
TILE_STEP = 0.75


#: SSD anchor layouts of MediaPipe's BlazeFace graphs, by output count: (stride, anchors per cell)
#: per feature map. Full range: one 48x48 map at stride 4. Short range: 16x16 at stride 8 with 2
#: anchors per cell, then 8x8 at stride 16 with 6 (MediaPipe's four layers, the last three
#: sharing one stride). All anchors are fixed-size (1x1), so only their centres matter.
_ANCHOR_LAYOUTS = {2304: ((4, 1),), 896: ((8, 2), (16, 6))}


def _anchors(count: int, size: int) -> np.ndarray:
    """``(count, 2)`` anchor centres in [0, 1], row-major over each feature map, maps in order."""
    layout = _ANCHOR_LAYOUTS.get(count)
    if layout is None or sum((size // s) ** 2 * n for s, n in layout) != count:
        raise ModelError(f"BlazeFace output has {count} anchors; no known SSD layout for a {size} px input")
    parts = []
    for stride, per_cell in layout:
        side = size // stride
        centres = (np.arange(side, dtype=np.float32) + 0.5) / side
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        parts.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(parts)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's blending suppression: each cluster of overlapping boxes becomes one face.

    Greedy from the best score; every remaining box with IoU above the threshold joins the
    cluster, and the face's box and keypoints are the score-weighted mean of the cluster (the
    score stays the best one). Averaging the many neighbouring anchors that fire on one face
    gives steadier boxes and landmarks than keeping the single top anchor.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    out = []
    while order.size:
        top = order[0]
        x1 = np.maximum(boxes[top, 0], boxes[order, 0])
        y1 = np.maximum(boxes[top, 1], boxes[order, 1])
        x2 = np.minimum(boxes[top, 2], boxes[order, 2])
        y2 = np.minimum(boxes[top, 3], boxes[order, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[top] + areas[order] - inter, 1e-12)
        member = iou > iou_threshold
        member[0] = True  # a degenerate (zero-area) top box still forms its own cluster
        cluster, order = order[member], order[~member]
        w = scores[cluster][:, None]
        total = float(w.sum())
        out.append(((boxes[cluster] * w).sum(0) / total, float(scores[top]),
                    (points[cluster] * w[:, :, None]).sum(0) / total))
    return out


class BlazeFace(Detector):
    """MediaPipe BlazeFace full-range detector (192x192 input, box + 6 keypoints).

    The whole image is letterboxed into 192x192, as MediaPipe does, so a face is found reliably
    when it is about 1/7 of the image's long side or more (~28 px at the input); below ~1/9
    (~21 px) faces start to be missed. For group photos and other large images with small
    faces, ``tiles=N`` adds passes over square windows, N across the long side and overlapping
    by a quarter; detections from all passes are merged by the same weighted suppression.
    Each window costs one more network run (~2-3 ms on a laptop-class core).

    ``score_threshold`` is on the sigmoid score. MediaPipe's full-range graph uses 0.6; 0.5 finds
    the subject in 497 of 500 LFW images against 487, and the detections it adds in 0.5-0.6 were
    all real (cut-off, background) faces. ``iou_threshold`` is the overlap at which detections
    are blended into one (MediaPipe: 0.3).
    """

    name = "blazeface"

    def __init__(self, score_threshold: float = 0.5, iou_threshold: float = 0.3, tiles: int = 0,
                 threads: int | None = None) -> None:
        from ..zoo.tflite import tflite_to_onnx

        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be in [0, 1]")
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.tiles = int(tiles)  # 0 or 1: whole image only
        self.model_path = zoo.get(self.name).converted("model", tflite_to_onnx)
        self._session = runtime.onnx_session(self.model_path, threads)
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self._nchw = inp.shape[1] == 3
        self.size = int(inp.shape[2] if self._nchw else inp.shape[1])
        outs = {o.name: o for o in self._session.get_outputs()}
        # Regressor: 16 values per anchor (box 4 + 6 keypoints x 2); classifier: 1 logit.
        self._outputs = sorted(outs, key=lambda n: outs[n].shape[-1], reverse=True)
        count = int(outs[self._outputs[0]].shape[1])
        self._anchors = _anchors(count, self.size)

    def export_spec(self) -> tuple[dict[str, Path], dict]:
        if self.tiles > 1:
            raise FaceprintError(f"{self.name} with tiles cannot be exported yet: export it with tiles=0")
        return {"blazeface": self.model_path}, {"kind": "blazeface", "blazeface": self.decoding()}

    def decoding(self) -> dict:
        """This network's input and output decoding, as a bundle's ``bundle.json`` gives it."""
        layout = _ANCHOR_LAYOUTS[len(self._anchors)]
        return {
            "size": self.size, "nchw": self._nchw,
            "outputs": {"regressor": self._outputs[0], "classifier": self._outputs[1]},
            "input": "letterbox into size x size (black padding, centred), x * 2/255 - 1",
            "anchors": [list(a) for a in layout], "raw_score_clip": _RAW_SCORE_CLIP,
            "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
            "keypoints": list(KEYPOINTS),
        }

    # -- one network pass -------------------------------------------------------------------

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """Scale to fit ``size`` keeping aspect ratio, pad with black (MediaPipe's letterbox).

        Returns the network input and the map back: ``x_img = (x_in - pad_x) / sx``.
        """
        h, w = image.shape[:2]
        s = self.size / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp)
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = resized
        return canvas, nw / w, nh / h, px, py

    def _infer(self, image: np.ndarray, ox: float = 0.0, oy: float = 0.0):
        """Candidate detections (above threshold) in full-image pixels, before suppression."""
        canvas, sx, sy, px, py = self._letterbox(image)
        x = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
        x = x.transpose(2, 0, 1)[None] if self._nchw else x[None]
        reg, cls = self._session.run(self._outputs, {self._input: np.ascontiguousarray(x)})
        logits = np.clip(cls[0, :, 0], -_RAW_SCORE_CLIP, _RAW_SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # float32 overflows at the clip
        keep = scores >= self.score_threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        reg, scores, anchors = reg[0, keep], scores[keep], self._anchors[keep]
        # Offsets are in input pixels relative to the anchor centre; anchors are 1x1 (fixed size).
        cx = reg[:, 0] + anchors[:, 0] * self.size
        cy = reg[:, 1] + anchors[:, 1] * self.size
        half_w, half_h = reg[:, 2] / 2, reg[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        points = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * self.size
        # input pixels -> image pixels
        scale = np.array([sx, sy], np.float32)
        pad = np.array([px, py], np.float32)
        offset = np.array([ox, oy], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) - pad) / scale + offset).reshape(-1, 4)
        points = (points - pad) / scale + offset
        return boxes, scores, points

    def windows(self, h: int, w: int, tiles: int) -> list[tuple[int, int, int]]:
        """Square windows (x, y, side): ``tiles`` across the long side, overlapping by a quarter.

        The overlap lets a face cut by one tile's edge appear whole in a neighbour; the short
        side gets as many windows as it needs at the same size and overlap. Windows are never
        smaller than the network input: upsampling adds no detail and invites false positives
        on face parts, so small images get fewer windows (none below ~1.3x the input size).
        """
        step = TILE_STEP
        n = min(tiles, int(1 + (max(h, w) / self.size - 1) / step))
        if n < 2:
            return []
        side = max(h, w) / (1 + step * (n - 1))

        def starts(dim: int) -> np.ndarray:
            count = 1 + max(0, int(np.ceil((dim - side) / (step * side) - 1e-6)))
            return np.linspace(0, max(dim - side, 0), count).round().astype(int)

        s = int(np.ceil(side))
        return [(int(x), int(y), s) for y in starts(h) for x in starts(w)]

    # -- public ---------------------------------------------------------------------------

    def detect(self, image: Image, tiles: int | None = None, part: tuple[int, int] = (0, 1),
               whole: bool = True) -> list[Face]:
        """Faces by descending score. Boxes are clipped to the image so crops stay valid;
        keypoints are not (an ear of a face at the border may lie outside). ``tiles``
        overrides the instance's setting for this call; ``part`` ``(k, n)`` runs only every
        n-th tiled window from the k-th; ``whole`` False leaves out the whole-image pass (for a
        caller that makes it with another model)."""
        if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(f"expected a non-empty HxWx3 RGB image, got shape {image.shape}")
        image = np.ascontiguousarray(image, dtype=np.uint8)
        h, w = image.shape[:2]
        parts = [self._infer(image)] if whole else []
        tiles = self.tiles if tiles is None else tiles
        if tiles > 1:
            for x, y, side in self.windows(h, w, tiles)[part[0]::part[1]]:
                parts.append(self._infer(image[y:y + side, x:x + side], x, y))
        if not parts:
            return []
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        points = np.concatenate([p[2] for p in parts])
        faces = []
        for box, score, pts in weighted_nms(boxes, scores, points, self.iou_threshold):
            x1, y1, x2, y2 = (float(v) for v in box)
            faces.append(Face(
                box=(max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))),
                score=score,
                landmarks={k: (float(px), float(py)) for k, (px, py) in zip(KEYPOINTS, pts)},
                detector=self.name,
            ))
        return sorted(faces, key=lambda f: f.score, reverse=True)


class BlazeFaceShort(BlazeFace):
    """MediaPipe BlazeFace short range (128x128): for faces filling a good part of the frame.

    MediaPipe's selfie-distance model: about half the work of the full-range one, and it finds
    the large, centred faces of portraits and ID-style crops that the full-range model (tuned for
    smaller faces) sometimes misses; it does not find small faces. Same decoding and suppression.
    """

    name = "blazeface-short"
