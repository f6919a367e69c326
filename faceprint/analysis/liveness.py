"""Single-image liveness (presentation-attack detection): faceplugin's ``fr_liveness``.

One photo cannot prove a face is live; this only scores how much the crop around the face looks
like a print or a screen. Its threshold is calibrated on LFW photos against generated attacks
(``benchmarks/liveness.py``), not on real attacks or camera frames: see docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import Face, Image
from ..zoo.prelu import prelu_as_convs
from . import OnnxAttribute
from ._crops import box_like, softmax, stretched_crop
from .record import Liveness


def _convert(path: Path) -> bytes:
    return prelu_as_convs(path.read_bytes())  # 33 PReLUs: 2x faster, the same output (zoo.prelu)


class FacepluginLiveness(OnnxAttribute):
    """A MiniFASNet-like net (Silent-Face's recipe at 128 px) fed as faceplugin's JS feeds it: its
    detector's box x2.7, not squared, shifted inside the image, 128x128 RGB raw 0..255. Of its 3
    logits, softmax index 0 is live (attacks drive it to ~0.01), 1 spoof; index 2 stays ~0.
    The wide crop is the point: the border of a sheet or a screen's bezel is evidence."""

    name = "fr-liveness"
    attribute = "liveness"
    convert = staticmethod(_convert)
    #: p(live) at which 5% of real LFW faces are refused (BPCER 5%): benchmarks/results/liveness.json
    threshold = 0.0037

    def predict(self, image: Image, face: Face, found: dict) -> Liveness:
        crop = stretched_crop(image, box_like(face, "fr_detect"), 2.7, 128).astype(np.float32)
        p = softmax(self.run(crop.transpose(2, 0, 1)[None])[0][0])
        return Liveness(float(p[0]), self.threshold, self.name)
