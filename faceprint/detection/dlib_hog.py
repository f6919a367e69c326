"""dlib's HOG frontal detector with its 5-point shape predictor: the face_recognition baseline."""

from __future__ import annotations

import dlib
import numpy as np

from .. import zoo
from ..types import Face, Image
from . import Detector


class DlibHOG(Detector):
    """HOG + linear SVM; fast on frontal faces, blind to strongly turned or small (<~40 px) ones.

    ``upsample`` doubles the image that many times first, finding faces down to ~40/2**n px.
    """

    name = "dlib-hog"

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(zoo.get(self.name).path("landmarks")))

    def detect(self, image: Image) -> list[Face]:
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        faces = [self._face(image, r, s) for r, s in zip(rects, scores)]
        return sorted(faces, key=lambda f: -f.score)

    def _face(self, image: Image, rect: dlib.rectangle, score: float) -> Face:
        shape = self._landmarks(image, rect)
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        # points 0-1 and 2-3 are the corners of the two eyes, 4 the base of the nose
        eyes = sorted([p[0:2].mean(0), p[2:4].mean(0)], key=lambda e: e[0])
        landmarks = {
            "left_eye": (float(eyes[0][0]), float(eyes[0][1])),
            "right_eye": (float(eyes[1][0]), float(eyes[1][1])),
            "nose_base": (float(p[4][0]), float(p[4][1])),
        }
        box = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
        return Face(box=box, score=float(score), landmarks=landmarks, detector=self.name)
