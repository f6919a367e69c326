"""Crops as each attribute model's own package makes them, from any faceprint detector's face.

Each carrier's code crops around its own detector's box (dlib's HOG box, faceplugin's
``fr_detect``, Human's BlazeFace), and the models are sensitive to where that box sits. Rather
than run three more detectors, the box each one would give is predicted from the face's eyes and
mouth: centre on the eye-mouth axis, size proportional to s = (inter-eye + eye-to-mouth) / 2.
The coefficients are medians over 300 LFW faces (``benchmarks/analysis.py --only boxes``), where
each ratio varies by 6-9% (coefficient of variation) from face to face.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import cv2
import numpy as np

from ..types import Face, Image

#: box kind -> (centre along eye->mouth, width / s, height / s)
BOXES = {
    "hog": (0.454, 2.447, 2.427),  # dlib's HOG frontal detector (what the 68-point predictor was trained on)
    "fr_detect": (0.288, 2.129, 2.969),  # faceplugin's Ultra-Light RFB-320
    "blazeface": (0.464, 2.546, 2.546),  # BlazeFace, as Human's models are fed
}


#: fr_landmark's mean offset to the iBUG 300-W points (dlib-68's), point by point in units of its
#: ``fr_detect`` box; fitted by ``benchmarks/analysis.py --only landmarkfit``
FR_IBUG_OFFSETS = "fr-landmark-ibug.json"


@functools.cache
def fr_ibug_offsets() -> np.ndarray:
    """The 68 x 2 offsets in ``FR_IBUG_OFFSETS``: fr_landmark's own points plus these are iBUG's."""
    text = resources.files(__package__).joinpath("data", FR_IBUG_OFFSETS).read_text()
    return np.array(json.loads(text)["offsets"], np.float64)


def eyes_mouth(face: Face) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The face's left eye, right eye and mouth centre, or None if its detector gives no mouth."""
    lm = face.landmarks
    if "left_eye" not in lm or "right_eye" not in lm:
        return None
    if "mouth" in lm:
        mouth = np.array(lm["mouth"], np.float64)
    elif "mouth_left" in lm and "mouth_right" in lm:
        mouth = (np.array(lm["mouth_left"], np.float64) + np.array(lm["mouth_right"], np.float64)) / 2
    else:
        return None
    return np.array(lm["left_eye"], np.float64), np.array(lm["right_eye"], np.float64), mouth


def box_like(face: Face, kind: str) -> tuple[float, float, float, float]:
    """The box detector ``kind`` would give this face (the face's own box when it has no eyes and mouth)."""
    points = eyes_mouth(face)
    if points is None:
        return face.box
    le, re, mouth = points
    eyes = (le + re) / 2
    s = (np.linalg.norm(re - le) + np.linalg.norm(mouth - eyes)) / 2
    along, w, h = BOXES[kind]
    cx, cy = eyes + along * (mouth - eyes)
    return (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)


def stretched_crop(image: Image, box, scale: float, size: int) -> Image:
    """faceplugin's ``alignXImage``: the box scaled about its centre (not squared), shifted to lie
    inside the image, stretched to ``size`` x ``size``."""
    H, W = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    s = min((H - 1) / bh, (W - 1) / bw, scale)
    nw, nh = bw * s, bh * s
    cx, cy = x1 + bw / 2, y1 + bh / 2
    left, top = min(max(cx - nw / 2, 0), W - 1 - nw), min(max(cy - nh / 2, 0), H - 1 - nh)
    left, top = max(int(left), 0), max(int(top), 0)
    roi = image[top:top + max(int(nh), 1), left:left + max(int(nw), 1)]
    return cv2.resize(roi, (size, size), interpolation=cv2.INTER_LINEAR)


def square_crop(image: Image, box, scale: float, size: int) -> Image:
    """The box's long side times ``scale``, squared about its centre, zero outside the image (Human's crop)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    k = size / (max(x2 - x1, y2 - y1) * scale)
    m = np.array([[k, 0, size / 2 - cx * k], [0, k, size / 2 - cy * k]])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def swapped_grey(rgb: Image) -> np.ndarray:
    """What OpenCV.js ``COLOR_BGR2GRAY`` gives on a canvas (RGBA): grey with the R and B weights swapped,
    which is what faceplugin's grey models were fed by their own JS."""
    x = rgb.astype(np.float32)
    return 0.114 * x[..., 0] + 0.587 * x[..., 1] + 0.299 * x[..., 2]


def imagenet(rgb: Image) -> np.ndarray:
    """NCHW batch of one, ImageNet mean and std on 0..1."""
    x = rgb.astype(np.float32) / 255.0
    return ((x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).astype(np.float32).transpose(2, 0, 1)[None]


def softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
