"""The gallery: enrolled people in a database, searched through a vector index.

The database (``store.py``) is the truth. The search index (``faceprint.index``) is a cache of its
embeddings that follows the database's change log: before every search it applies whatever any
process has committed since, and it is saved beside the database (``gallery.db.index``) with a
stamp (gallery id, embedder, last change applied). An index that disagrees with the database
(after a crash, a copied or restored file, a reindex) is caught up from the log or rebuilt, and
names are read from the database at answer time, so a removed person is never returned. A
PostgreSQL gallery, or an encrypted one (whose index would hold the embeddings in the clear),
keeps its index in memory only and builds it from the database when first searched. With
``vectors`` (a Milvus URI) the index is a Milvus collection instead, following the same log
(``milvus.py``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from platformdirs import user_data_dir

from ..errors import GalleryError, ImageError, NoFaceError, UnknownPersonError
from ..imageio import load_image, load_reduced
from ..index import APPROX_FROM, FaceIndex
from ..pipeline import Pipeline, get_pipeline, largest
from ..types import Face, Image
from .crypto import Sealer
from .names import lookup_name, valid_name
from .store import FaceRow, Removed, open_store

_CHIP_MARGIN = 0.6  # of the face box, each side: room for any embedder's template
_CHIP_MAX = 320


def default_location() -> str:
    return os.environ.get("FACEPRINT_DB") or str(Path(user_data_dir("faceprint")) / "gallery.db")


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
    """Enrolled people in a database; ``identify`` names every face in an image or says unknown.

    ``location`` is a SQLite file (default: $FACEPRINT_DB or the user data folder) or a
    ``postgresql://`` URL. The gallery remembers which embedder its faces were embedded with and
    refuses to mix models; ``reindex`` re-embeds every stored face for another one, from the face
    images kept with them (``keep_images``; without them a face cannot be re-embedded). With
    ``FACEPRINT_ENCRYPTION_KEY`` set, embeddings and face images are encrypted at rest.
    ``vectors`` keeps the search index in Milvus (a Milvus Lite ``.db`` path or a server URL,
    ``faceprint.gallery.milvus``) instead of memory; refused on an encrypted gallery.
    ``readonly``: for callers that only read; the gallery must exist, and a SQLite file is opened
    read-only (``open_store``). Safe to share between threads.
    """

    def __init__(self, location: str | Path | None = None, *, detector: str | None = None,
                 embedder: str | None = None, threshold: float | None = None, approx_from: int | None = APPROX_FROM,
                 keep_images: bool = True, sealer: Sealer | None = None, vectors: str | None = None,
                 readonly: bool = False):
        self.store = open_store(location or default_location(), sealer or Sealer.from_env(), readonly=readonly)
        self.keep_images = keep_images
        stored = self.store.get_meta("embedder")
        if embedder and stored and embedder != stored and self.store.count_faces():
            raise GalleryError(
                f"this gallery holds {stored} embeddings, not {embedder} "
                f"(run `faceprint reindex --embedder {embedder}` to switch it)"
            )
        kwargs = {k: v for k, v in (("detector", detector), ("embedder", embedder or stored)) if v}
        self.pipeline: Pipeline = get_pipeline(**kwargs)
        self._threshold = threshold
        self._approx_from = approx_from  # gallery size where search turns approximate (faceprint.index)
        self._index: FaceIndex | None = None
        self._index_seq = 0  # last change-log entry the index reflects
        self._index_version = -1  # store.version when the index was last checked
        self._index_saved = True
        self._index_lock = threading.RLock()
        self._milvus = None  # with ``vectors``: the index is a Milvus collection (milvus.py)
        if vectors:
            from .milvus import MilvusVectors

            try:
                self._milvus = MilvusVectors(vectors, self.store)
            except BaseException:
                self.store.close()
                raise

    @property
    def location(self) -> str:
        """The database, printable (a PostgreSQL URL without its password)."""
        return self.store.location

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else self.pipeline.embedder.identify_threshold

    @property
    def index_path(self) -> Path | None:
        """Where the index is saved: beside a SQLite file, unless embeddings are encrypted or in Milvus."""
        path = self.store.path
        if path is None or self.store.sealed or self._milvus is not None:
            return None
        return path.with_name(path.name + ".index")

    def close(self) -> None:
        if self._index is not None and not self._index_saved and self.index_path is not None:
            self._save_index()
        if self._milvus is not None:
            self._milvus.close()
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def enroll(self, name: str, image: Image | bytes | str | Path, source: str | None = None,
               box: tuple[float, float, float, float] | None = None, create: bool = True,
               min_side: int | None = None) -> int | None:
        """Add the largest face in ``image`` (or the one at ``box``) to ``name`` (created if new,
        unless not ``create``).

        Returns the face id, or None if this image was already enrolled for them. ``box`` picks the detected face overlapping it most, for photos of several people (e.g. a
        face chosen in `faceprint cluster` output). ``min_side``: a large encoded image may be
        decoded reduced to that long side (:func:`~faceprint.imageio.load_reduced`); the face's
        box and landmarks are stored in the image's own coordinates all the same.
        """
        name = valid_name(name) if create else lookup_name(name)  # a bad name fails before any model work
        if isinstance(image, (str, Path)):
            source = source or str(Path(image).resolve())
            raw, label = _read(image), str(image)
        elif isinstance(image, bytes):
            raw, label = image, source
        else:
            raw, label = None, None
        decoded = load_reduced(image if raw is None else raw, min_side, name=label)
        pixels, scale = decoded.pixels, decoded.scale
        sha = hashlib.sha256(pixels.tobytes() if raw is None else raw).hexdigest()
        self._follow_embedder()
        faces = self.pipeline.detect(pixels)
        if not faces:
            raise NoFaceError(f"{source or 'image'}: no face found")
        face = largest(faces) if box is None else _at(faces, tuple(v / scale for v in box), source)
        emb = self.pipeline.embed(pixels, [face])[0]
        chip, chip_face = _chip(pixels, face) if self.keep_images else (b"", {})
        stored = face.scaled(scale)
        return self.store.add_face(
            name, self.pipeline.embedder.name, emb.vector, source=source, image_sha256=sha,
            box=[float(v) for v in stored.box], landmarks={k: list(v) for k, v in stored.landmarks.items()},
            detector=face.detector, chip=chip, chip_face=chip_face, create=create,
        )

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
        if self._milvus is not None:  # erase their vectors from Milvus now, not at the next search
            try:
                with self._index_lock:
                    self._synced_index()
            except Exception:  # noqa: BLE001 - Milvus unreachable: gone from the database, the next search catches up
                pass
        return removed

    def reindex(self, embedder: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-embed every stored face with ``embedder`` from its stored chip; all-or-nothing."""
        pipe = get_pipeline(self.pipeline.detector.name, embedder)
        pipe.embedder  # load it now: an unknown name must fail before anything is written
        rows = self.store.faces()
        if missing := sum(not row.chip for row in rows):
            raise GalleryError(f"{missing} of {len(rows)} faces were enrolled without keeping their image and "
                               f"cannot be re-embedded; gallery left unchanged")
        vectors = {}
        for i, row in enumerate(rows):
            vectors[row.id] = pipe.embed(_decode_chip(row), [_chip_face(row)])[0].vector
            if progress:
                progress(i + 1, len(rows))
        self.store.replace_embeddings(embedder, vectors)
        self.pipeline = pipe
        self._index = None
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
        with self._index_lock:
            index = self._synced_index()
            if self._milvus is None:
                keys, dist = index.search(vectors, k)
        if self._milvus is not None:  # Milvus serves concurrent searches: no lock held over the round trip
            keys, dist = index.search(vectors, k)
        names = self.store.names_of(keys.ravel().tolist())
        return [[(names[int(f)], float(d)) for f, d in zip(row_k, row_d) if int(f) in names]
                for row_k, row_d in zip(keys, dist)]

    def identify(self, image: Image | str | Path) -> list[Match]:
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
        if stored and stored != self.pipeline.embedder.name and self.store.count_faces():
            with self._index_lock:
                self.pipeline = get_pipeline(self.pipeline.detector.name, stored)
                self._index = None

    def _synced_index(self) -> FaceIndex:
        """The index, brought in step with every change committed to the database so far."""
        version = self.store.version
        if self._index is not None and version == self._index_version:
            return self._index
        embedder = self.pipeline.embedder.name
        if self._milvus is not None:
            self._index = self._milvus.synced(self.store, embedder, self.pipeline.embedder.dims)
            self._index_version = version
            return self._index
        with self.store.snapshot():
            if self._index is None:
                self._load_index(embedder)
            if self._index is not None:
                changes = self.store.changes_since(self._index_seq)
                if any(op == "reset" for _, op, _ in changes):
                    self._index = None
                elif changes:
                    self._apply(changes, embedder)
            if self._index is None or len(self._index) != self.store.count_embeddings(embedder):
                self._rebuild(embedder)
        self._index_version = version
        return self._index

    def _stamp(self, embedder: str) -> dict:
        return {"gallery_id": self.store.get_meta("gallery_id"), "embedder": embedder}

    def _load_index(self, embedder: str) -> None:
        """The saved index, if it was made from this database and not from a later state of it."""
        if self.index_path is None:
            return
        saved = FaceIndex.load(self.index_path, self._stamp(embedder), approx_from=self._approx_from)
        if saved is not None and saved[1]["seq"] <= self.store.last_change():
            self._index, self._index_seq = saved[0], saved[1]["seq"]
            self._index_saved = True

    def _rebuild(self, embedder: str) -> None:
        """The index from scratch out of the database (inside the caller's snapshot)."""
        ids, vectors = self.store.embeddings(embedder)
        index = FaceIndex(vectors.shape[1] if len(ids) else self.pipeline.embedder.dims, approx_from=self._approx_from)
        if len(ids):
            index.add(ids, vectors)
        self._index, self._index_seq = index, self.store.last_change()
        if self.index_path is not None:
            self._save_index()

    def _apply(self, changes: list[tuple[int, str, int | None]], embedder: str) -> None:
        """Replay logged adds and removes; idempotent, so a change seen twice does no harm."""
        removed = {f for _, op, f in changes if op == "remove"}
        added = [f for _, op, f in changes if op == "add" and f not in removed]
        self._index.remove(np.array([*removed, *added], np.int64))
        ids, vectors = self.store.vectors_of(embedder, added)
        if len(ids):
            self._index.add(ids, vectors)
        self._index_seq = changes[-1][0]
        self._index_saved = False

    def _save_index(self) -> None:
        """Write the index beside the database; a lock keeps two processes' files from mixing."""
        try:
            with open(self.index_path.with_name(self.index_path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._index.save(self.index_path, dict(self._stamp(self.pipeline.embedder.name),
                                                       seq=self._index_seq))
            self._index_saved = True
        except OSError:
            self._index_saved = False  # a read-only folder: the index stays in memory, rebuilt next time


def _at(faces: list[Face], box: tuple[float, float, float, float], source: str | None) -> Face:
    """The face overlapping ``box`` most (IoU at least 0.3)."""
    def iou(f: Face) -> float:
        x1, y1 = max(f.box[0], box[0]), max(f.box[1], box[1])
        x2, y2 = min(f.box[2], box[2]), min(f.box[3], box[3])
        inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        return inter / (f.width * f.height + (box[2] - box[0]) * (box[3] - box[1]) - inter)
    best = max(faces, key=iou)
    if iou(best) < 0.3:
        raise NoFaceError(f"{source or 'image'}: no face found at box {[round(v) for v in box]}")
    return best


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
