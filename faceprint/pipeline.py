"""A detector and an embedder joined by alignment: image in, faceprints out.

The one place the stages meet, so each stage stays ignorant of the others. Both models load on
first use: a caller that only reads a gallery (``faceprint people list``) loads neither.
"""

from __future__ import annotations

from functools import cache

from .alignment import align
from .detection import DEFAULT_DETECTOR, Detector, get_detector
from .embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from .errors import NoFaceError
from .imageio import load_image
from .boxes import overlap
from .types import AlignedFace, Box, Embedding, Face, Image, ImageLike


class Pipeline:
    """Detect -> align -> embed, with models chosen by name (see ``faceprint models list``)."""

    def __init__(self, detector: str | Detector = DEFAULT_DETECTOR, embedder: str | Embedder = DEFAULT_EMBEDDER):
        self._detector = detector
        self._embedder = embedder

    @property
    def detector(self) -> Detector:
        if isinstance(self._detector, str):
            self._detector = get_detector(self._detector)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if isinstance(self._embedder, str):
            self._embedder = get_embedder(self._embedder)
        return self._embedder

    @property
    def detector_name(self) -> str:
        """The detector's name, without loading it."""
        return self._detector if isinstance(self._detector, str) else self._detector.name

    @property
    def embedder_name(self) -> str:
        """The embedder's name, without loading it."""
        return self._embedder if isinstance(self._embedder, str) else self._embedder.name

    @property
    def threshold(self) -> float:
        return self.embedder.threshold

    def detect(self, image: ImageLike) -> list[Face]:
        return self.detector.detect(load_image(image))

    def align(self, image: Image, faces: list[Face]) -> list[AlignedFace]:
        e = self.embedder
        return [align(image, f, e.template, e.size) for f in faces]

    def embed(self, image: ImageLike, faces: list[Face] | None = None) -> list[Embedding]:
        """Faceprints of ``faces`` (default: every face found), one batched model call."""
        image = load_image(image)
        faces = self.detector.detect(image) if faces is None else faces
        if not faces:
            return []
        vectors = self.embedder.embed_faces(image, faces)
        return [Embedding(vector=v, model=self.embedder.name, face=f) for v, f in zip(vectors, faces)]

    def embed_one(self, image: ImageLike, near: Box | None = None, *, label: str | None = None) -> Embedding:
        """The faceprint of the largest face (the subject of a portrait or an enrolment photo), or
        with ``near`` of the face overlapping that box most (IoU at least 0.3: one person picked
        in a group photo). ``label`` names the image in errors."""
        image = load_image(image)
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError(f"{label}: no face found" if label else "no face found")
        if near is None:
            return self.embed(image, [largest(faces)])[0]
        ious = overlap([f.box for f in faces], near)[:, 0]
        best = faces[int(ious.argmax())]
        if ious.max() < 0.3:
            raise NoFaceError(f"{label or 'image'}: no face found at box {[round(v) for v in near]}")
        return self.embed(image, [best])[0]


def largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.width * f.height)


@cache
def get_pipeline(detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER) -> Pipeline:
    return Pipeline(detector, embedder)
