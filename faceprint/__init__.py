"""faceprint: face recognition that does the whole job, each stage real and swappable.

Stages, one module each: ``imageio`` (decode) -> ``detection`` -> ``alignment`` -> ``embedding``
-> ``matching`` / ``gallery``; ``analysis`` reads attributes (age, expression, pose...) off a face;
``zoo`` fetches the pretrained models; ``cli`` is the command line.
"""

from .analysis import FaceAnalysis
from .api import analyze, detect, embed, verify
from .errors import FaceprintError, GalleryError, ImageError, ModelError, NoFaceError
from .gallery import Gallery, Match
from .imageio import load_image
from .matching import Verification, cosine_distance
from .pipeline import Pipeline
from .types import AlignedFace, Embedding, Face

__all__ = [
    "analyze", "detect", "embed", "verify", "load_image", "Gallery", "Match", "Pipeline", "Verification",
    "cosine_distance", "Face", "FaceAnalysis", "AlignedFace", "Embedding",
    "FaceprintError", "GalleryError", "ImageError", "ModelError", "NoFaceError",
]
__version__ = "0.1.0"
