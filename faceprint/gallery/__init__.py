"""The gallery: enrolled people in a database, searched through a vector index.

The database (``store.py``) is the truth. The search index is a cache of its embeddings that
follows the database's change log (``vectors.py``): in memory, saved beside a SQLite file
(``gallery.db.index``), or with ``vectors`` (a Milvus URI) in a Milvus collection (``milvus.py``).
No model is loaded until one is needed: a gallery opened to list people or keys loads none.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_data_dir

from ..chips import chip_face, cut_chip
from ..errors import GalleryError, ImageError, UnknownPersonError
from ..imageio import load_image, load_reduced
from ..index import APPROX_FROM
from ..pipeline import Pipeline, get_pipeline
from ..types import Box, Face, ImageLike
from .crypto import Sealer
from .names import lookup_name, valid_name
from .store import FaceRow, NewFace, Removed, open_store
from .vectors import LocalVectors, VectorIndex, Vectors

log = logging.getLogger(__name__)


def default_location() -> str:
    return os.environ.get("FACEPRINT_DB") or str(Path(user_data_dir("faceprint")) / "gallery.db")


@dataclass(frozen=True)
class Match:
    """One face found in a probe image, with who it is (``name`` None means unknown)."""

    face: Face
    name: str | None
    distance: float | None

    def to_dict(self) -> dict:
        return named_face(self.face, self.name, self.distance)


def named_face(face: Face, name: str | None, distance: float | None, digits: int = 6) -> dict:
    """The JSON shape of a face and who it is (``name`` None: unknown), shared by ``identify``
    and live video's tracked faces."""
    return {"box": [round(float(v), 1) for v in face.box], "name": name,
            "distance": None if distance is None else round(float(distance), digits)}


class Gallery:
    """Enrolled people in a database; ``identify`` names every face in an image or says unknown.

    ``location`` is a SQLite file (default: $FACEPRINT_DB or the user data folder) or a
    ``postgresql://`` URL. The gallery remembers which embedder its faces were embedded with and
    refuses to mix models; ``reindex`` re-embeds every stored face for another one, from the face
    images kept with them (``keep_images``; without them a face cannot be re-embedded). With
    ``FACEPRINT_ENCRYPTION_KEY`` set, embeddings and face images are encrypted at rest.
    ``vectors`` keeps the search index in Milvus (a Milvus Lite ``.db`` path or a server URL,
    ``faceprint.gallery.milvus``) instead of memory; refused on an encrypted gallery.
    ``readonly``: for callers that only read; the gallery must exist, and a SQLite file is opened
    read-only (``open_store``). ``threshold`` fixes the distance within which a face is named;
    without it the threshold follows the gallery's size so that at most ``fpir`` of strangers get
    a name (default 1%, see ``threshold``). Safe to share between threads.
    """

    def __init__(self, location: str | Path | None = None, *, detector: str | None = None,
                 embedder: str | None = None, threshold: float | None = None, approx_from: int | None = APPROX_FROM,
                 keep_images: bool = True, sealer: Sealer | None = None, vectors: str | None = None,
                 readonly: bool = False, fpir: float | None = None):
        self.store = open_store(location or default_location(), sealer or Sealer.from_env(), readonly=readonly)
        self.keep_images = keep_images
        stored = self.store.get_meta("embedder")
        if embedder and stored and embedder != stored and self.store.count_faces():
            raise GalleryError(
                f"this gallery holds {stored} embeddings, not {embedder} "
                f"(run `faceprint reindex --embedder {embedder}` to switch it)"
            )
        kwargs = {k: v for k, v in (("detector", detector), ("embedder", embedder or stored)) if v}
        self.pipeline: Pipeline = get_pipeline(**kwargs)  # its models load on first use
        self._threshold, self._fpir = threshold, fpir
        try:
            self._vectors: Vectors = _vectors(vectors, self.store, approx_from)
        except BaseException:
            self.store.close()
            raise

    @property
    def location(self) -> str:
        """The database, printable (a PostgreSQL URL without its password)."""
        return self.store.location

    @property
    def threshold(self) -> float:
        """Cosine distance within which a face is named: ``threshold`` if given, else the one that
        names at most ``fpir`` of strangers at this gallery's size (``Embedder.open_set_threshold``):
        it tightens as the gallery grows."""
        if self._threshold is not None:
            return self._threshold
        size = self._vectors.size(self.store, self.pipeline.embedder_name, lambda: self.pipeline.embedder.dims)
        return self.pipeline.embedder.open_set_threshold(size, self._fpir)

    @property
    def index_path(self) -> Path | None:
        """Where the index is saved: beside a SQLite file, unless embeddings are encrypted or in Milvus."""
        return self._vectors.path

    def close(self) -> None:
        self._vectors.close()
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def enroll(self, name: str, image: ImageLike, source: str | None = None, box: Box | None = None,
               create: bool = True, min_side: int | None = None) -> int | None:
        """Add the largest face in ``image`` (or the one at ``box``) to ``name`` (created if new,
        unless not ``create``).

        Returns the face id, or None if this image was already enrolled for them. ``box`` picks the
        detected face overlapping it most, for photos of several people (e.g. a face chosen in
        `faceprint cluster` output). ``min_side``: a large encoded image may be decoded reduced to
        that long side (:func:`~faceprint.imageio.load_reduced`); the face's box and landmarks are
        stored in the image's own coordinates all the same. The image is decoded once, here.
        """
        name = valid_name(name) if create else lookup_name(name)  # a bad name fails before any model work
        if isinstance(image, (str, os.PathLike)):
            source = source or str(Path(image).resolve())
            raw, label = _read(image), str(image)
        elif isinstance(image, np.ndarray):
            raw, label = None, None
        else:
            raw, label = bytes(image), source
        decoded = load_reduced(image if raw is None else raw, min_side, name=label)
        pixels, scale = decoded.pixels, decoded.scale
        self._follow_embedder()
        found = self.pipeline.embed_one(pixels, None if box is None else tuple(v / scale for v in box),
                                        label=source or "image")
        face = found.face
        chip, geometry = cut_chip(pixels, face) if self.keep_images else (b"", {})
        stored = face.scaled(scale)
        return self.store.add_face(NewFace(
            person=name, embedder=found.model, vector=found.vector,
            image_sha256=hashlib.sha256(pixels.tobytes() if raw is None else raw).hexdigest(),
            box=[float(v) for v in stored.box], landmarks={k: list(v) for k, v in stored.landmarks.items()},
            detector=face.detector, source=source, chip=chip, chip_face=geometry,
        ), create=create)

    def add_person(self, name: str) -> str:
        """A person with no faces yet (enrolling a face creates its person anyway); returns the name
        as stored (``names.valid_name``: NFC)."""
        return self.store.add_person(name)

    def rename(self, old: str, new: str) -> str:
        """Returns the new name as stored."""
        return self.store.rename(old, new)

    def remove(self, name: str) -> Removed:
        """Erase a person: every face, embedding and face image stored for them."""
        removed = self.store.remove(name)
        self._vectors.forget(self.store, self.pipeline.embedder_name, lambda: self.pipeline.embedder.dims)
        return removed

    def reindex(self, embedder: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored face with ``embedder`` from its stored chip; all-or-nothing."""
        pipe = get_pipeline(self.pipeline.detector_name, embedder)
        pipe.embedder  # load it now: an unknown name must fail before anything is written
        rows = self.store.faces()
        if missing := sum(not row.chip for row in rows):
            raise GalleryError(f"{missing} of {len(rows)} faces were enrolled without keeping their image and "
                               f"cannot be re-embedded; gallery left unchanged")
        vectors = {}
        for i, row in enumerate(rows):
            chip = load_image(row.chip, name=f"stored face {row.id}")
            vectors[row.id] = pipe.embed(chip, [chip_face(row.chip_face, row.detector)])[0].vector
            if progress:
                progress(i + 1, len(rows))
        self.store.replace_embeddings(embedder, vectors)
        self.pipeline = pipe
        return len(rows)

    # -- reading ----------------------------------------------------------------------------
    def people(self) -> list[dict]:
        return [{"name": n, "faces": c, "created": t} for n, c, t in self.store.people()]

    def faces(self, name: str) -> list[FaceRow]:
        if not self.store.has_person(name):
            raise UnknownPersonError(f"no person named {name!r}")
        return self.store.faces(name)

    def thumbnail(self, name: str) -> bytes | None:
        """A JPEG of the person's first face that has its image kept, or None."""
        return next((row.chip for row in self.faces(name) if row.chip), None)

    def search(self, vectors: np.ndarray, k: int = 1) -> list[list[tuple[str, float]]]:
        """The ``k`` nearest enrolled faces of each vector: ``(name, cosine distance)``, nearest first."""
        keys, dist = self._vectors.search(self.store, self.pipeline.embedder_name, vectors, k)
        names = self.store.names_of(keys.ravel().tolist())
        return [[(names[int(f)], float(d)) for f, d in zip(row_k, row_d) if int(f) in names]
                for row_k, row_d in zip(keys, dist)]

    def identify(self, image: ImageLike) -> list[Match]:
        """Every face in ``image``, named by its nearest enrolled face, or unknown past the threshold."""
        self._follow_embedder()
        embeddings = self.pipeline.embed(load_image(image))
        if not embeddings:
            return []
        found = self.search(np.stack([e.vector for e in embeddings]))
        matches = []
        for e, best in zip(embeddings, found):
            name, d = best[0] if best else (None, None)
            matches.append(Match(face=e.face, name=name if d is not None and d <= self.threshold else None,
                                 distance=d))
        return matches

    # -- the search index -------------------------------------------------------------------
    def _follow_embedder(self) -> None:
        """After another process reindexed the gallery, embed with the model it now holds."""
        stored = self.store.get_meta("embedder")
        if stored and stored != self.pipeline.embedder_name and self.store.count_faces():
            self.pipeline = get_pipeline(self.pipeline.detector_name, stored)

    def _synced_index(self) -> VectorIndex:
        """The index, brought in step with every change committed to the database so far."""
        return self._vectors.synced(self.store, self.pipeline.embedder_name, lambda: self.pipeline.embedder.dims)


def _vectors(uri: str | None, store, approx_from: int | None) -> Vectors:
    """Where the index lives: a Milvus collection for a ``vectors`` URI, else memory."""
    if not uri:
        return LocalVectors(store, approx_from)
    from .milvus import MilvusVectors

    return MilvusVectors(uri, store)


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None
