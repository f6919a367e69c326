"""Alignment: warp a detected face onto an embedder's canonical crop.

A similarity transform (rotation, uniform scale, translation) is fitted by least squares
(Umeyama, 1991) from the landmarks the detector found to the embedder's template, using the
points the two have in common. Two points already fix a similarity; more average out noise.
"""

from __future__ import annotations

import numpy as np

from .errors import FaceprintError
from .types import AlignedFace, Face, Image

#: ArcFace's 112x112 five-point template (insightface), the reference most models are trained on.
ARCFACE_112 = {
    "left_eye": (38.2946, 51.6963),
    "right_eye": (73.5318, 51.5014),
    "nose": (56.0252, 71.7366),
    "mouth_left": (41.5493, 92.3655),
    "mouth_right": (70.7299, 92.2041),
    "mouth": (56.1396, 92.2848),
    # dlib's 5-point model marks the base of the nose, not its tip; placed by mapping the
    # measured dlib chip (below) onto this template through the eyes.
    "nose_base": (55.68, 79.03),
}

#: dlib's 150x150 chip (``get_face_chip(..., padding=0.25)``). Eyes and nose base are where
#: dlib's own chip puts its 5-point landmarks (mean over 200 LFW faces, eye centre = mean of
#: the two corners); the other points come from ARCFACE_112 mapped through the eyes.
DLIB_150 = {
    "left_eye": (47.22, 46.62),
    "right_eye": (99.93, 46.41),
    "nose_base": (73.24, 87.54),
    "nose": (73.76, 76.6),
    "mouth_left": (52.1, 107.5),
    "mouth_right": (95.8, 107.2),
    "mouth": (73.9, 107.3),
}


def scaled_template(template: dict[str, tuple[float, float]], src_size: float, size: float,
                    zoom: float = 1.0) -> dict[str, tuple[float, float]]:
    """A template moved to another crop size; ``zoom`` < 1 leaves more margin round the face."""
    c = src_size / 2
    k = size / src_size * zoom
    return {n: ((x - c) * k + size / 2, (y - c) * k + size / 2) for n, (x, y) in template.items()}


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix that maps ``src`` points onto ``dst`` with least squared error."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError("umeyama needs two matching (N, 2) arrays with N >= 2")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s == 0:
        raise ValueError("source points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = (sig * np.diag(sign)).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def similarity(face: Face, template: dict[str, tuple[float, float]]) -> np.ndarray:
    common = [n for n in template if n in face.landmarks]
    if len(common) < 2:
        raise FaceprintError(
            f"detector {face.detector!r} gave landmarks {sorted(face.landmarks)}, "
            f"too few in common with the embedder's template {sorted(template)}"
        )
    src = np.array([face.landmarks[n] for n in common])
    dst = np.array([template[n] for n in common])
    return umeyama(src, dst)


def align(image: Image, face: Face, template: dict[str, tuple[float, float]], size: int) -> AlignedFace:
    """The ``size`` x ``size`` crop of ``face`` with its landmarks on ``template``."""
    import cv2  # loaded on first use, not when faceprint is imported

    m = similarity(face, template)
    pixels = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return AlignedFace(pixels=pixels, face=face, matrix=m)
