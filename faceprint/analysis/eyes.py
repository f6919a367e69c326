"""Eye state: faceplugin's ``fr_eye`` on each eye, placed by the 68 landmarks."""

from __future__ import annotations

import cv2

from ..types import Face, Image
from . import OnnxAttribute
from ._crops import softmax, swapped_grey
from .record import Eyes


class FacepluginEyes(OnnxAttribute):
    """24x24 grey (/255) per eye: a square centred on the eyelid points, 1.6x the eye's corner-to-corner
    width, as faceplugin's JS cuts it. Output [closed, open] logits. ~2 ms for both eyes."""

    name = "fr-eye"
    attribute = "eyes"
    needs = ("landmarks68",)

    def predict(self, image: Image, face: Face, found: dict) -> Eyes:
        p = found["landmarks68"].points
        H, W = image.shape[:2]
        opened = []
        for a, b, lids in ((36, 39, [37, 38, 40, 41]), (42, 45, [43, 44, 46, 47])):
            cx, cy = p[lids].mean(0)
            side = max(int(abs(p[b, 0] - p[a, 0]) * 1.6), 2)
            left = int(min(max(cx - side / 2, 0), max(W - side, 0)))
            top = int(min(max(cy - side / 2, 0), max(H - side, 0)))
            roi = image[top:top + side, left:left + side]
            grey = swapped_grey(cv2.resize(roi, (24, 24), interpolation=cv2.INTER_LINEAR)) / 255.0
            opened.append(float(softmax(self.run(grey[None, None])[0][0])[1]))
        return Eyes(opened[0], opened[1], self.name)


