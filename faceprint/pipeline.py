"""A detector and an embedder joined by alignment: image in, faceprints out.

The one place the stages meet, so each stage stays ignorant of the others.
"""

from __future__ import annotations

from functools import cache

from .alignment import align
from .detection import DEFAULT_DETECTOR, Detector, get_detector
from .embedding import DEFAULT_EMBEDDER, Embedder, get_embedder
from .errors import NoFaceError
from .imageio import load_image
from .types import AlignedFace, Embedding, Face, Image


class Pipeline:
    """Detect -> align -> embed, with models chosen by name (see ``faceprint models list``)."""

    def __init__(self, detector: str | Detector = DEFAULT_DETECTOR, embedder: str | Embedder = DEFAULT_EMBEDDER):
        self.detector = get_detector(detector) if isinstance(detector, str) else detector
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        # loaded on first use, so detection-only callers never load an embedding model
        if isinstance(self._embedder, str):
            self._embedder = get_embedder(self._embedder)
        return self._embedder

    @property
    def threshold(self) -> float:
        return self.embedder.threshold

    def detect(self, image: Image | str) -> list[Face]:
        return self.detector.detect(load_image(image))

    def align(self, image: Image, faces: list[Face]) -> list[AlignedFace]:
        e = self.embedder
        return [align(image, f, e.template, e.size) for f in faces]

    def embed(self, image: Image | str, faces: list[Face] | None = None) -> list[Embedding]:
        """Faceprints of ``faces`` (default: every face found), one batched model call."""
        image = load_image(image)
        faces = self.detector.detect(image) if faces is None else faces
        if not faces:
            return []
        vectors = self.embedder.embed_faces(image, faces)
        return [Embedding(vector=v, model=self.embedder.name, face=f) for v, f in zip(vectors, faces)]

    def embed_one(self, image: Image | str) -> Embedding:
        """The faceprint of the largest face: the subject of a portrait or an enrolment photo."""
        image = load_image(image)
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError("no face found")
        return self.embed(image, [largest(faces)])[0]


def largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.width * f.height)


@cache
def get_pipeline(detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER) -> Pipeline:
    return Pipeline(detector, embedder)
