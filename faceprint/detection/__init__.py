"""Detection: find every face in an image, with a box, a score and whatever landmarks the model gives.

Detectors are chosen by name (``get_detector("mtcnn")``); each lives in its own module and is
imported only when asked for, so a user of one never pays for loading another's runtime.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import FaceprintError
from ..types import Face, Image
from ..zoo.plugins import Registry, fingerprint

_DETECTORS = {
    "blazeface": "faceprint.detection.blazeface:BlazeFace",
    "blazeface-short": "faceprint.detection.blazeface:BlazeFaceShort",
    "mtcnn": "faceprint.detection.mtcnn:MTCNN",
    "dlib-hog": "faceprint.detection.dlib_hog:DlibHOG",
    "blazeface-mtcnn": "faceprint.detection.blazeface_mtcnn:BlazeFaceMTCNN",
    "blazeface-short-mtcnn": "faceprint.detection.blazeface_mtcnn:BlazeFaceShortMTCNN",
    "retinaface": "faceprint.detection.retinaface:RetinaFace",
}

DEFAULT_DETECTOR = "blazeface-mtcnn"


class Detector(ABC):
    """Finds faces. Implementations return faces sorted by descending score."""

    name: ClassVar[str]
    #: bump when the code changes what the detector returns, so cached evaluations are redone
    revision: ClassVar[int] = 1
    #: The smallest face found, as a fraction of the image's long side, for a detector that scales
    #: large images down to a fixed size: it needs no more resolution than that to find its faces.
    #: None: it finds faces down to a size in pixels, so every pixel counts.
    min_face_fraction: float | None = None

    @property
    def fingerprint(self) -> str:
        """What determines this detector's output: name, revision, settings, weight hashes.

        Evaluation caches are keyed on it, so a new model file or a code change never reuses
        embeddings made by the old one.
        """
        settings = {k: v for k, v in vars(self).items()
                    if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple))}
        return fingerprint(self.name, self.revision, str(sorted(settings.items())))

    @abstractmethod
    def detect(self, image: Image) -> list[Face]:
        """All faces in an RGB ``uint8`` image, in that image's pixel coordinates."""

    def export_spec(self) -> tuple[dict[str, Path], dict]:
        """The model files by role (``{"blazeface": path}``) and the preprocessing and decoding a
        standalone runner needs (``faceprint export``); detectors without one cannot be exported."""
        raise FaceprintError(f"detector {self.name!r} cannot be exported yet")

    def sweep(self, image: Image, step: int) -> list[Face]:
        """Step ``step`` of a search spread over several video frames, for faces that appeared: a
        detector whose search is several passes (tiles) runs some of them each step, every pass
        within a few steps. Faces already tracked are found by ``refine``, not by this. Default:
        the whole search every step."""
        return self.detect(image)

    def refine(self, image: Image, boxes: np.ndarray) -> list[Face] | None:
        """The faces at ``boxes`` (``(N, 4)``, e.g. from the previous video frame), re-scored and
        re-placed at a fraction of a full search's cost; None where the detector has no such
        shortcut (callers then run ``detect``). Boxes with no face any more are dropped."""
        return None


detectors: Registry[Detector] = Registry("detector", _DETECTORS)


def detector_names() -> list[str]:
    return detectors.names()


def get_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    """The shared instance of a detector, loading (and fetching) its model on first use."""
    return detectors.get(name)
