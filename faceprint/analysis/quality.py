"""A face-quality score: how well the face is likely to be recognised, from four cheap cues.

Each part is in [0, 1] and the score is their product, so any one bad cue sinks it:

- ``sharpness``: variance v of the Laplacian of the face aligned onto the 112x112 ArcFace crop
  (grey), as v / (v + SHARPNESS_HALF): 0.5 at SHARPNESS_HALF, the 10th percentile of LFW faces.
- ``size``: the distance between the eyes over the 35 px the ArcFace crop places them apart,
  capped at 1: a smaller face is upsampled, its detail made up.
- ``pose``: cos(yaw) x cos(pitch), clipped at 0: a turned face shows less of itself.
- ``detector``: the detector's confidence.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..alignment import ARCFACE_112, align
from ..types import Face, Image
from . import AttributeModel
from .record import Quality

#: Laplacian variance giving sharpness 0.5: the 10th percentile (69.4) of 500 LFW faces
#: (benchmarks/analysis.py --only quality)
SHARPNESS_HALF = 70.0
_EYE_SPAN = float(np.linalg.norm(np.subtract(ARCFACE_112["right_eye"], ARCFACE_112["left_eye"])))


def laplacian_variance(image: Image, face: Face) -> float:
    """Sharpness of the face on the ArcFace crop (its box, stretched, when it has no eye landmarks)."""
    if "left_eye" in face.landmarks and "right_eye" in face.landmarks:
        crop = align(image, face, ARCFACE_112, 112).pixels
    else:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        H, W = image.shape[:2]
        roi = image[max(y1, 0):max(min(y2, H), max(y1, 0) + 1), max(x1, 0):max(min(x2, W), max(x1, 0) + 1)]
        crop = cv2.resize(roi, (112, 112), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


class HeuristicQuality(AttributeModel):
    name = "heuristic"
    attribute = "quality"
    needs = ("pose",)

    def predict(self, image: Image, face: Face, found: dict) -> Quality:
        v = laplacian_variance(image, face)
        sharp = v / (v + SHARPNESS_HALF)
        lm = face.landmarks
        if "left_eye" in lm and "right_eye" in lm:
            eyes = float(np.linalg.norm(np.subtract(lm["right_eye"], lm["left_eye"])))
        else:  # the eyes sit about 0.4 box widths apart for the detectors faceprint has
            eyes = 0.4 * face.width
        size = min(1.0, eyes / _EYE_SPAN)
        pose = found["pose"]
        turn = max(0.0, float(np.cos(np.radians(pose.yaw)) * np.cos(np.radians(pose.pitch))))
        det = float(np.clip(face.score, 0, 1))
        return Quality(sharp * size * turn * det, sharp, size, turn, det, self.name)
