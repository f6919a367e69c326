"""The gallery: enrolled people, identified against in one matrix product.

The database (``store.py``) is the truth; the in-memory matrix of embeddings is a cache that is
rebuilt whenever any process has committed a change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from platformdirs import user_data_dir

from ..errors import GalleryError, ImageError, NoFaceError
from ..imageio import load_image
from ..matching import nearest
from ..pipeline import Pipeline, get_pipeline, largest
from ..types import Face, Image
from .store import FaceRow, Store

_CHIP_MARGIN = 0.6  # of the face box, each side: room for any embedder's template
_CHIP_MAX = 320


def default_path() -> Path:
    return Path(os.environ.get("FACEPRINT_DB") or Path(user_data_dir("faceprint")) / "gallery.db")


@dataclass(frozen=True)
class Match:
    """One face found in a probe image, with who it is (``name`` None means unknown)."""

    face: Face
    name: str | None
    distance: float | None

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.face.box],
            "name": self.name,
            "distance": None if self.distance is None else round(float(self.distance), 6),
        }


class Gallery:
    """Enrolled people in a SQLite file; ``identify`` names every face in an image or says unknown.

    The gallery remembers which embedder its faces were embedded with and refuses to mix models;
    ``reindex`` re-embeds every stored face for another one.
    """

    def __init__(self, path: str | Path | None = None, *, detector: str | None = None, embedder: str | None = None,
                 threshold: float | None = None):
        self.store = Store(path or default_path())
        stored = self.store.get_meta("embedder")
        if embedder and stored and embedder != stored and self.store.count_faces():
            raise GalleryError(
                f"this gallery holds {stored} embeddings, not {embedder} "
                f"(run `faceprint reindex --embedder {embedder}` to switch it)"
            )
        kwargs = {k: v for k, v in (("detector", detector), ("embedder", embedder or stored)) if v}
        self.pipeline: Pipeline = get_pipeline(**kwargs)
        self._threshold = threshold
        self._cache: tuple[int, list[str], np.ndarray] | None = None

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else self.pipeline.embedder.identify_threshold

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def enroll(self, name: str, image: Image | str | Path, source: str | None = None) -> int | None:
        """Add the largest face in ``image`` to ``name``; None if this image was already enrolled for them."""
        name = name.strip()
        if not name:
            raise GalleryError("a person's name cannot be empty")
        if isinstance(image, (str, Path)):
            source = source or str(Path(image).resolve())
            raw = _read(image)
            pixels = load_image(raw, name=str(image))
            sha = hashlib.sha256(raw).hexdigest()
        else:
            pixels = load_image(image)
            sha = hashlib.sha256(pixels.tobytes()).hexdigest()
        faces = self.pipeline.detect(pixels)
        if not faces:
            raise NoFaceError(f"{source or 'image'}: no face found")
        face = largest(faces)
        emb = self.pipeline.embed(pixels, [face])[0]
        chip, chip_face = _chip(pixels, face)
        return self.store.add_face(
            name, self.pipeline.embedder.name, emb.vector, source=source, image_sha256=sha,
            box=[float(v) for v in face.box], landmarks={k: list(v) for k, v in face.landmarks.items()},
            detector=face.detector, chip=chip, chip_face=chip_face,
        )

    def rename(self, old: str, new: str) -> None:
        self.store.rename(old, new.strip())

    def remove(self, name: str) -> int:
        return self.store.remove(name)

    def reindex(self, embedder: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored face with ``embedder`` from its stored chip; all-or-nothing."""
        pipe = get_pipeline(self.pipeline.detector.name, embedder)
        pipe.embedder  # load it now: an unknown name must fail before anything is written
        rows = self.store.faces()
        vectors = {}
        for i, row in enumerate(rows):
            vectors[row.id] = pipe.embed(_decode_chip(row), [_chip_face(row)])[0].vector
            if progress:
                progress(i + 1, len(rows))
        self.store.replace_embeddings(embedder, vectors)
        self.pipeline = pipe
        self._cache = None
        return len(rows)

    # -- reading ----------------------------------------------------------------------------
    def people(self) -> list[dict]:
        return [{"name": n, "faces": c, "created": t} for n, c, t in self.store.people()]

    def faces(self, name: str) -> list[FaceRow]:
        if not self.store.has_person(name):
            raise GalleryError(f"no person named {name!r}")
        return self.store.faces(name)

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        version = self.store.version
        if self._cache is None or self._cache[0] != version:
            names, vectors = self.store.embeddings(self.pipeline.embedder.name)
            self._cache = (version, names, vectors)
        return self._cache[1], self._cache[2]

    def identify(self, image: Image | str | Path) -> list[Match]:
        """Every face in ``image``, named by its nearest enrolled face, or unknown past the threshold."""
        embeddings = self.pipeline.embed(load_image(image))
        if not embeddings:
            return []
        names, matrix = self._matrix()
        idx, dist = nearest(np.stack([e.vector for e in embeddings]), matrix)
        return [
            Match(face=e.face, name=names[i] if d <= self.threshold else None,
                  distance=None if not np.isfinite(d) else float(d))
            for e, i, d in zip(embeddings, idx, dist)
        ]


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None


def _chip(image: Image, face: Face) -> tuple[bytes, dict]:
    """A JPEG of the region round the face plus the face's geometry inside it."""
    x1, y1, x2, y2 = face.box
    mx, my = (x2 - x1) * _CHIP_MARGIN, (y2 - y1) * _CHIP_MARGIN
    h, w = image.shape[:2]
    cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    cx2, cy2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    region = image[cy1:cy2, cx1:cx2]
    k = min(1.0, _CHIP_MAX / max(region.shape[:2]))
    if k < 1.0:
        region = cv2.resize(region, (round(region.shape[1] * k), round(region.shape[0] * k)),
                            interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(region, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise GalleryError("could not encode face chip")

    def move(x: float, y: float) -> list[float]:
        return [(x - cx1) * k, (y - cy1) * k]

    geometry = {
        "box": move(x1, y1) + move(x2, y2),
        "landmarks": {n: move(*p) for n, p in face.landmarks.items()},
        "score": float(face.score),
    }
    return jpg.tobytes(), geometry


def _decode_chip(row: FaceRow) -> Image:
    return load_image(row.chip, name=f"stored face {row.id}")


def _chip_face(row: FaceRow) -> Face:
    g = row.chip_face
    return Face(box=tuple(g["box"]), score=g["score"], landmarks={n: tuple(p) for n, p in g["landmarks"].items()},
                detector=row.detector)
