"""Face chips: a JPEG of the region round a face, with the face's geometry inside it.

A gallery keeps one per enrolled face, so the face can be re-aligned and re-embedded by another
embedder (``faceprint reindex``) and shown (thumbnails) without the source image.
"""

from __future__ import annotations

from .boxes import widened
from .errors import FaceprintError
from .types import Face, Image

_MARGIN = 0.6  # of the face box, each side: room for any embedder's template
_MAX = 320


def cut_chip(image: Image, face: Face) -> tuple[bytes, dict]:
    """A JPEG of the region round ``face`` plus the face's geometry inside it (``chip_face``)."""
    import cv2  # loaded on first use, not when faceprint is imported

    x1, y1, x2, y2 = face.box
    cx1, cy1, cx2, cy2 = widened(face.box, _MARGIN, image.shape)
    region = image[cy1:cy2, cx1:cx2]
    k = min(1.0, _MAX / max(region.shape[:2]))
    if k < 1.0:
        region = cv2.resize(region, (round(region.shape[1] * k), round(region.shape[0] * k)),
                            interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(region, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise FaceprintError("could not encode face chip")

    def move(x: float, y: float) -> list[float]:
        return [(x - cx1) * k, (y - cy1) * k]

    geometry = {
        "box": move(x1, y1) + move(x2, y2),
        "landmarks": {n: move(*p) for n, p in face.landmarks.items()},
        "score": float(face.score),
    }
    return jpg.tobytes(), geometry


def chip_face(geometry: dict, detector: str) -> Face:
    """The face inside its chip, from the geometry ``cut_chip`` gave."""
    return Face(box=tuple(geometry["box"]), score=geometry["score"],
                landmarks={n: tuple(p) for n, p in geometry["landmarks"].items()}, detector=detector)
