"""BlazeFace finds the faces, MTCNN's last stage places the landmarks: MTCNN quality at BlazeFace cost.

Most of MTCNN's time goes to its first two stages, which scan an image pyramid for candidate
boxes; BlazeFace finds the same candidates in one network pass. Its six keypoints are coarse,
though (fed to alignment they cost faceplugin half a point of LFW accuracy), while MTCNN's
output network (ONet) places five precise ones on a 48x48 crop in well under a millisecond.
So BlazeFace proposes, ONet re-scores, tightens and places the five points. Where that leaves
nothing (BlazeFace misses some faces that fill the frame, or ONet rejects its boxes), the image
goes through the full MTCNN cascade, so the hybrid finds at least what MTCNN alone finds there.
Where that too finds nothing, RetinaFace has the last word: trained on WIDER FACE's often hidden
faces, it finds the faces whose nose and mouth a mask covers, which BlazeFace and MTCNN (trained on
bare faces) lose. It runs only on images the rest found no face in, so elsewhere it costs nothing
(docs/benchmarks.md, masked faces).

Faces smaller than ~1/8 of the image's long side are below BlazeFace's reach in one pass: the
detector adds tiled passes (``BlazeFace(tiles=N)``) just enough to reach ``min_face_size``.

``blazeface-short-mtcnn`` makes the whole-image pass with BlazeFace's short-range model (128 px
input instead of 192, under a third of the multiply-adds) and keeps the full-range model for the
tiles. A portrait or ID photo needs no tiles, so there it costs about half, and as ONet places the
landmarks either way, the faces it finds are aligned as well (LFW, faceplugin: 99.38% against
99.43%, docs/models.md). The short-range model is no good at small faces: making the tiles' passes
too, it found 64 faces in real 1080p crowd frames where the default found 108, which is why the
tiles stay full-range (``benchmarks/crowd_detection.py``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from .. import zoo
from ..errors import FaceprintError, ImageError
from ..types import Face, Image
from . import Detector
from .blazeface import TILE_STEP, BlazeFace, BlazeFaceShort
from .mtcnn import MTCNN
from .retinaface import RetinaFace

#: BlazeFace full range finds faces reliably down to about 1/7 of its window's side (the short-range
#: model nearly so: of 300 LFW faces pasted at random places on blurred photos it found all at 1/6
#: of the image's side, 99.7% at 1/6.7, 99% at 1/7.1, 95% at 1/7.7).
_REACH = 7.0
#: Tiled windows a ``sweep`` step runs at most, beside the whole-image pass (a frame's windows
#: are all run within ceil(windows / this) steps).
SWEEP_TILES = 3
#: The fallback is for faces BlazeFace misses because they fill the frame, which survive shrinking:
#: it runs on the image shrunk to this long side at most (a blank 36-megapixel photo's pyramid
#: otherwise costs MTCNN seconds).
_FALLBACK_SIDE = 1280


class BlazeFaceMTCNN(Detector):
    """BlazeFace proposals, MTCNN ONet landmarks, MTCNN then RetinaFace as fallbacks (see the module docstring).

    ``min_face_size`` (px) sets how many BlazeFace tiles a large image gets; ``max_tiles`` caps
    them (the tile count grows with image size over ``min_face_size``, each tile a network pass).
    """

    name = "blazeface-mtcnn"
    revision = 2  # 2: RetinaFace after the MTCNN fallback
    #: the BlazeFace model of the whole-image pass; None: the full-range one, its detections blended
    #: with those of its tiles (the tiles are always full-range)
    whole_pass: ClassVar[type[BlazeFace] | None] = None

    def __init__(self, min_face_size: float = 40.0, max_tiles: int = 4, threads: int | None = None) -> None:
        if min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px")
        self.min_face_size = float(min_face_size)
        self.max_tiles = int(max_tiles)
        self._threads = threads
        self._blazeface = BlazeFace(threads=threads)
        self._whole = self.whole_pass(threads=threads) if self.whole_pass else None
        self._mtcnn = MTCNN(min_face_size=self.min_face_size, threads=threads)

    @cached_property
    def _retinaface(self) -> RetinaFace:
        """Loaded the first time an image needs it: most never do, and a command starts sooner."""
        return RetinaFace(threads=self._threads)

    @property
    def fingerprint(self) -> str:
        retinaface = zoo.get(RetinaFace.name).files["model"].sha256[:16]
        whole = f"{self._whole.fingerprint} + " if self._whole else ""
        return (f"{super().fingerprint} [{whole}{self._blazeface.fingerprint} + {self._mtcnn.fingerprint}"
                f" + retinaface {RetinaFace.revision} {retinaface}]")

    @property
    def min_face_fraction(self) -> float:
        # BlazeFace's reach over the most tiles (the fallback's, min_face_size at 1280 px, is near it)
        return 1 / (_REACH * self.max_tiles)

    def export_spec(self) -> tuple[dict[str, Path], dict]:
        if self._whole:
            raise FaceprintError(f"{self.name} cannot be exported yet (the bundle's runner has one BlazeFace): "
                                 f"export {BlazeFaceMTCNN.name}")
        spec = {"kind": self.name, "blazeface": self._blazeface.decoding(), "mtcnn": self._mtcnn.decoding(),
                "retinaface": self._retinaface.decoding(),
                "tiles": {"reach": _REACH, "min_face_size": self.min_face_size, "max_tiles": self.max_tiles,
                          "step": TILE_STEP},
                "fallback_side": _FALLBACK_SIDE}
        return ({"blazeface": self._blazeface.model_path, **self._mtcnn.model_paths,
                 "retinaface": self._retinaface.model_path}, spec)

    def _tiles(self, height: int, width: int) -> int:
        return min(self.max_tiles, math.ceil(max(height, width) / (_REACH * self.min_face_size)))

    def _checked(self, image: Image) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ImageError(f"{self.name} needs a non-empty HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
        return image

    def detect(self, image: Image) -> list[Face]:
        image = self._checked(image)
        proposals = self._propose(image, self._tiles(*image.shape[:2]))
        faces = self._mtcnn.place(image, np.array([f.box for f in proposals])) if proposals else []
        if not faces:
            faces = self._fallback(image)
        return [replace(f, detector=self.name) for f in faces]

    def sweep(self, image: Image, step: int) -> list[Face]:
        """The whole-image pass and a few of the tiled windows, a different few each step (no fallback:
        it is for faces filling the frame, which the whole-image pass or ``refine`` of a track finds)."""
        image = self._checked(image)
        tiles = self._tiles(*image.shape[:2])
        parts = max(1, math.ceil(len(self._blazeface.windows(*image.shape[:2], tiles)) / SWEEP_TILES))
        proposals = self._propose(image, tiles, (step % parts, parts))
        faces = self._mtcnn.place(image, np.array([f.box for f in proposals])) if proposals else []
        return [replace(f, detector=self.name) for f in faces]

    def _propose(self, image: np.ndarray, tiles: int, part: tuple[int, int] = (0, 1)) -> list[Face]:
        """BlazeFace's candidates: the whole-image pass and the tiles (``part`` of them, see ``BlazeFace.detect``)."""
        if self._whole is None:
            return self._blazeface.detect(image, tiles=tiles, part=part)
        # two models' candidates for one face are merged by ONet's suppression in ``place``
        return self._whole.detect(image, tiles=0) + self._blazeface.detect(image, tiles=tiles, part=part, whole=False)

    def _fallback(self, image: Image) -> list[Face]:
        scale = _FALLBACK_SIDE / max(image.shape[:2])
        if scale >= 1:
            faces = self._mtcnn.detect(image)
        else:
            small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            faces = [f.scaled(1 / scale) for f in self._mtcnn.detect(small)]
        return faces or self._retinaface.detect(image)

    def refine(self, image: Image, boxes: np.ndarray) -> list[Face]:
        return [replace(f, detector=self.name) for f in self._mtcnn.place(image, boxes)]


class BlazeFaceShortMTCNN(BlazeFaceMTCNN):
    """``blazeface-mtcnn`` with the whole-image pass made by BlazeFace's short-range model (see the
    module docstring): the same tiles, ONet landmarks and fallbacks; half the cost where no tiles run."""

    name = "blazeface-short-mtcnn"
    revision = 2  # 2: full-range tiles (1: short-range tiles, which lost small faces)
    whole_pass = BlazeFaceShort


__all__ = ["BlazeFaceMTCNN", "BlazeFaceShortMTCNN"]
