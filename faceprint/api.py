"""The beginner's API: a handful of plain functions over the pipeline.

    import faceprint
    faces = faceprint.detect("group.jpg")
    result = faceprint.verify("me.jpg", "passport.jpg")
    gallery = faceprint.Gallery("people.db"); gallery.enroll("Ada", "ada.jpg"); gallery.identify("door.jpg")
    faces = faceprint.analyze("group.jpg", only="age,gender")
    faces = faceprint.liveness("door.jpg")  # each face's p(live), and live at the calibrated threshold

Every function takes a path, encoded bytes or an RGB array, and models by name.
"""

from __future__ import annotations

from pathlib import Path

from .analysis import Analyzer, FaceAnalysis
from .detection import DEFAULT_DETECTOR
from .embedding import DEFAULT_EMBEDDER
from .errors import FaceprintError, ModelError, about
from .imageio import load_image
from .matching import Metric, Verification, verify_vectors
from .pipeline import get_pipeline
from .types import Embedding, Face, ImageLike


def detect(image: ImageLike, detector: str = DEFAULT_DETECTOR) -> list[Face]:
    """Every face in the image, most confident first."""
    return get_pipeline(detector).detect(image)


def embed(image: ImageLike, detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER) -> list[Embedding]:
    """A faceprint for every face in the image (each carries its ``face``)."""
    return get_pipeline(detector, embedder).embed(image)


def verify(a: ImageLike, b: ImageLike, *, detector: str = DEFAULT_DETECTOR, embedder: str = DEFAULT_EMBEDDER,
           threshold: float | None = None, metric: Metric = "cosine") -> Verification:
    """Is the largest face in ``a`` the same person as the largest face in ``b``?

    ``threshold`` is a cosine distance; by default the embedder's LFW-calibrated one.
    """
    pipe = get_pipeline(detector, embedder)
    pipe.embedder  # load the model first, so a bad model name is not blamed on an image
    vectors = []
    for label, img in (("first image", a), ("second image", b)):
        try:
            vectors.append(pipe.embed_one(img).vector)
        except FaceprintError as e:
            raise about(img if isinstance(img, (str, Path)) else label, e) from None
    return verify_vectors(*vectors, pipe.threshold if threshold is None else threshold, pipe.embedder.name, metric)


def analyze(image: ImageLike, only: str | list[str] | None = None, *, models: dict[str, str] | None = None,
            detector: str = DEFAULT_DETECTOR) -> list[FaceAnalysis]:
    """Every face in the image with the attributes in ``only`` (default all: ``faceprint.analysis.ATTRIBUTES``).

    ``models`` picks a model per attribute (``{"expression": "fr-expression"}``). An attribute whose
    model cannot be fetched or loaded is missing from each record, its reason in ``errors``.
    """
    analyzer = Analyzer(only, models)  # a bad attribute or model name fails before any work
    pixels = load_image(image)
    return analyzer.analyze(pixels, get_pipeline(detector).detect(pixels))


def liveness(image: ImageLike, *, model: str | None = None, detector: str = DEFAULT_DETECTOR) -> list[FaceAnalysis]:
    """Every face in the image with its ``liveness``: the probability that it is live, not a print
    or a screen, and ``live`` at the model's threshold (calibrated in docs/benchmarks.md).

    One image is weak evidence: use it as one check among others, never alone to open a door.
    Unlike ``analyze``, a model that cannot be fetched or loaded is an error (``ModelError``),
    since liveness is all that was asked for.
    """
    analyzer = Analyzer("liveness", {"liveness": model} if model else None)
    pixels = load_image(image)
    found = analyzer.analyze(pixels, get_pipeline(detector).detect(pixels))
    for a in found:
        if a.errors:
            raise ModelError(a.errors["liveness"])
    return found
