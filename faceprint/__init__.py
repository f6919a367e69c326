"""faceprint: face recognition that does the whole job, each stage real and swappable.

Stages, one module each: ``imageio`` (decode) -> ``detection`` -> ``alignment`` -> ``embedding``
-> ``matching`` / ``gallery``; ``analysis`` reads attributes (age, expression, pose...) off a face;
``zoo`` fetches the pretrained models; ``cli`` is the command line.

The names below are imported on first use, so importing a submodule (``faceprint.cli``,
``faceprint.errors``) does not first load OpenCV, the gallery and every stage. The library logs
through ``logging.getLogger("faceprint")`` and its children, silent unless the application
configures logging.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .analysis import FaceAnalysis
    from .api import analyze, detect, embed, liveness, verify
    from .errors import FaceprintError, GalleryError, ImageError, ModelError, NoFaceError
    from .gallery import Gallery, Match
    from .imageio import load_image
    from .matching import Verification, cosine_distance
    from .pipeline import Pipeline
    from .types import AlignedFace, Embedding, Face

#: Each public name and the module it comes from.
_HOME = {
    "analyze": "api", "detect": "api", "embed": "api", "liveness": "api", "verify": "api", "load_image": "imageio",
    "Gallery": "gallery", "Match": "gallery", "Pipeline": "pipeline", "Verification": "matching",
    "cosine_distance": "matching", "Face": "types", "FaceAnalysis": "analysis", "AlignedFace": "types",
    "Embedding": "types", "FaceprintError": "errors", "GalleryError": "errors", "ImageError": "errors",
    "ModelError": "errors", "NoFaceError": "errors",
}
__all__ = list(_HOME)
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


logging.getLogger(__name__).addHandler(logging.NullHandler())
