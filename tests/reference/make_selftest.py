"""Rewrite the embedders' self-test face and reference vectors (faceprint/zoo/data/selftest-*).

Run after a deliberate change to what an embedder computes, then review the diff:

    python tests/reference/make_selftest.py

The face is scikit-image's astronaut portrait (NASA, public domain), found by the default
detector, cropped to 192x192 around it; the crop's landmarks are stored with it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import data

from faceprint.detection import get_detector
from faceprint.embedding import embedder_names, get_embedder
from faceprint.zoo.selftest import write_reference

SIDE = 192

image = np.ascontiguousarray(data.astronaut())
face = max(get_detector().detect(image), key=lambda f: f.width * f.height)
cx, cy = round((face.box[0] + face.box[2]) / 2), round((face.box[1] + face.box[3]) / 2)
x0, y0 = cx - SIDE // 2, cy - SIDE // 2
crop = np.ascontiguousarray(image[y0:y0 + SIDE, x0:x0 + SIDE])
assert crop.shape == (SIDE, SIDE, 3), "the face is too near the border for this crop"
moved = dataclasses.replace(
    face, box=(face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0),
    landmarks={k: (x - x0, y - y0) for k, (x, y) in face.landmarks.items()})
# an int8 model is held to its float model's reference (selftest.distance)
write_reference(crop, moved, [n for n in embedder_names() if get_embedder(n).precision != "int8"])
