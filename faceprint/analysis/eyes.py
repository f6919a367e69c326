"""Eye state: faceplugin's ``fr_eye`` on each eye, placed by the 68 landmarks."""

from __future__ import annotations

import cv2

from ..types import Face, Image
from . import OnnxAttribute
from ._crops import box_like, fr_ibug_offsets, softmax, swapped_grey
from .record import Eyes


class FacepluginEyes(OnnxAttribute):
    """24x24 grey (/255) per eye: a square centred on the eyelid points, 1.6x the eye's corner-to-corner
    width, as faceplugin's JS cuts it. Output [closed, open] logits. ~2 ms for both eyes.

    faceplugin cuts them around its own landmark model's points, so ``fr-landmark``'s points are moved
    back from the iBUG convention to where the model itself puts them (placed at the iBUG points,
    open eyes of a generated head read up to 0.5 less open); dlib's are used as they are. The model
    is touchy: 1-pixel shifts of one open LFW eye's crop (Keanu Reeves' right) read it 0.24-1.00 open."""

    name = "fr-eye"
    attribute = "eyes"
    needs = ("landmarks68",)

    def predict(self, image: Image, face: Face, found: dict) -> Eyes:
        marks = found["landmarks68"]
        p = marks.points
        if marks.model == "fr-landmark":
            x1, y1, x2, y2 = box_like(face, "fr_detect")
            p = p - fr_ibug_offsets() * [x2 - x1, y2 - y1]
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


