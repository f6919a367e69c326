"""68-point landmarks: dlib's shape predictor (the default) and faceplugin's CNN ``fr_landmark``."""

from __future__ import annotations

import dlib
import numpy as np

from .. import zoo
from ..types import Face, Image
from . import AttributeModel, OnnxAttribute
from ._crops import box_like, fr_ibug_offsets, stretched_crop, swapped_grey
from .record import Landmarks68


def dlib_rect(box) -> dlib.rectangle:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


class Dlib68(AttributeModel):
    """dlib's 68-point regression-tree predictor (iBUG 300-W), ~10 ms per face.

    It was trained on dlib HOG boxes, so it is given the HOG box predicted from the face's eyes and
    mouth (``_crops.BOXES``). Its training images are for research use only (dlib's note).
    """

    name = "dlib-68"
    attribute = "landmarks68"

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(str(zoo.get(self.name).path("model")))

    def predict(self, image: Image, face: Face, found: dict) -> Landmarks68:
        shape = self._predictor(image, dlib_rect(box_like(face, "hog")))
        return Landmarks68(np.array([[p.x, p.y] for p in shape.parts()], np.float64), self.name)


class FacepluginLandmarks(OnnxAttribute):
    """faceplugin's ``fr_landmark``: its detector's box stretched to 64x64 grey (/256), 68 points
    out in box units. ~2 ms.

    Its points follow a convention of their own: a jaw line drawn inside the face's outline, and
    the whole set a little to the right of iBUG's. Each point is moved by its mean offset from
    dlib's (iBUG-trained) point on 600 LFW faces (``benchmarks/analysis.py --only landmarkfit``,
    people apart from the benchmark's), unless ``to_ibug`` is False (how the offsets are fitted).
    """

    name = "fr-landmark"
    attribute = "landmarks68"

    def __init__(self, to_ibug: bool = True) -> None:
        super().__init__()
        self._offset = fr_ibug_offsets() if to_ibug else 0.0

    def predict(self, image: Image, face: Face, found: dict) -> Landmarks68:
        x1, y1, x2, y2 = box = box_like(face, "fr_detect")
        grey = swapped_grey(stretched_crop(image, box, 1.0, 64)) / 256.0
        p = self.run(grey[None, None])[0].reshape(68, 2).astype(np.float64) + self._offset
        return Landmarks68(p * [x2 - x1, y2 - y1] + [x1, y1], self.name)
