"""The gallery's search index, kept in step with the database's change log.

The database (``store``) is the truth; a search index is a cache of its embeddings. Every add and
remove of a face is logged in the database (``changes``), and an index records the last entry it
reflects: before answering it replays what was committed since (``replay``), or rebuilds from the
database when the log cannot be trusted (a ``reset`` by a reindex, a count that disagrees). Names
are read from the database at answer time, so a removed face is never named even if an index
still held it.

``VectorIndex`` is what an index offers: ``FaceIndex`` (``faceprint.index``, in memory) and
``MilvusIndex`` (``milvus.py``) both have it. ``Vectors`` is where a gallery's index lives:
``LocalVectors`` keeps a ``FaceIndex`` in memory, saved beside a SQLite file; ``MilvusVectors``
keeps it in a Milvus collection.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..index import FaceIndex
from .store import Store

log = logging.getLogger(__name__)

#: Log entries: ``(seq, op, face id)``, op one of ``add``, ``remove``, ``reset``.
Changes = list[tuple[int, str, int | None]]


class VectorIndex(Protocol):
    """Cosine nearest-neighbour search over vectors keyed by face id."""

    #: ``add`` replaces a key it already holds (Milvus), so replaying an add needs no remove first
    upserts: bool

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, keys: np.ndarray) -> None:
        """Keys not present are ignored."""

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, cosine distances)``, each ``(Q, k)``, nearest first; -1 and inf where there are fewer."""

    def __len__(self) -> int: ...


def replay(index: VectorIndex, store: Store, embedder: str, changes: Changes, batch: int = 1000) -> None:
    """Apply logged adds and removes to ``index``; idempotent, so a change seen twice does no harm
    (an index that does not upsert has an added face removed first, so it is never held twice; one
    that does is not asked to delete what it is about to replace). Each face ends as its last change
    leaves it: a database may give a removed face's id to the next face enrolled (SQLite reuses the
    largest), and that face must be added, not lost with the one removed before it."""
    last = {f: op for _, op, f in changes if op in ("add", "remove")}
    removed = {f for f, op in last.items() if op == "remove"}
    added = sorted(f for f, op in last.items() if op == "add")
    stale = removed if index.upserts else {*removed, *added}
    if stale:
        index.remove(np.array(sorted(stale), np.int64))
    for start in range(0, len(added), batch):
        ids, vectors = store.vectors_of(embedder, added[start:start + batch])
        if len(ids):
            index.add(ids, vectors)


def has_reset(changes: Changes) -> bool:
    """Whether the gallery was re-embedded (``reindex``) within ``changes``: the index is rebuilt."""
    return any(op == "reset" for _, op, _ in changes)


class Vectors(ABC):
    """Where a gallery's search index lives. Safe to share between threads."""

    #: where the index is saved beside the database, if it is
    path: Path | None = None

    def __init__(self) -> None:
        self._index: VectorIndex | None = None
        self._embedder: str | None = None
        self._version = -1  # store.version when the index was last brought in step
        self._size = 0  # len(self._index) then
        self._lock = threading.RLock()

    def synced(self, store: Store, embedder: str, dims: Callable[[], int]) -> VectorIndex:
        """``embedder``'s index, in step with every change committed to ``store`` so far. ``dims``
        gives the vectors' length, asked only when an empty index must be made."""
        with self._lock:
            version = store.version
            if embedder != self._embedder:
                self._index = None
            if self._index is None or version != self._version:
                self._index = self._follow(store, embedder, dims)
                self._embedder, self._version = embedder, version
                self._size = len(self._index)
            return self._index

    def size(self, store: Store, embedder: str, dims: Callable[[], int]) -> int:
        """Faces in the index as the last search left it (brought in step now only if it never was):
        the gallery's threshold then fits the index its answers came from, and asking for it, as the
        video engine does for every track on every frame, costs no database query."""
        with self._lock:
            if self._index is None or embedder != self._embedder:
                self.synced(store, embedder, dims)
            return self._size

    def search(self, store: Store, embedder: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` nearest face ids and distances of each query (an in-memory index is searched under
        the lock: it is not safe to search while it is being changed)."""
        with self._lock:
            return self.synced(store, embedder, lambda: queries.shape[1]).search(queries, k)

    def forget(self, store: Store, embedder: str, dims: Callable[[], int]) -> None:
        """After a person is removed. In memory nothing is needed: the next search catches up."""

    def close(self) -> None:
        """Release what the index holds (and save it, if it is saved)."""

    @abstractmethod
    def _follow(self, store: Store, embedder: str, dims: Callable[[], int]) -> VectorIndex:
        """The index (``self._index`` or a new one) brought in step with the log."""


class LocalVectors(Vectors):
    """A ``FaceIndex`` in memory, saved beside a SQLite gallery (``gallery.db.index``) with a stamp
    (gallery id, embedder, last change applied), so the next process loads it and catches up
    instead of rebuilding. A PostgreSQL gallery, or an encrypted one (whose saved index would hold
    the embeddings in the clear), keeps it in memory only, built from the database when first
    searched."""

    def __init__(self, store: Store, approx_from: int | None) -> None:
        super().__init__()
        if store.path is not None and not store.sealed:
            self.path = store.path.with_name(store.path.name + ".index")
        self._approx_from = approx_from  # gallery size where search turns approximate (faceprint.index)
        self._seq = 0  # last change-log entry the index reflects
        self._saved = True
        self._stamp: dict = {}

    def close(self) -> None:
        with self._lock:
            if self._index is not None and not self._saved and self.path is not None:
                self._save()

    def _follow(self, store: Store, embedder: str, dims: Callable[[], int]) -> FaceIndex:
        with store.snapshot():
            self._stamp = {"gallery_id": store.get_meta("gallery_id"), "embedder": embedder}
            if self._index is None:
                self._load(store)
            if self._index is not None:
                changes = store.changes_since(self._seq)
                if has_reset(changes):
                    self._index = None
                elif changes:
                    replay(self._index, store, embedder, changes)
                    self._seq, self._saved = changes[-1][0], False
            if self._index is None or len(self._index) != store.count_embeddings(embedder):
                self._rebuild(store, embedder, dims)
        return self._index

    def _load(self, store: Store) -> None:
        """The saved index, if it was made from this database and not from a later state of it."""
        if self.path is None:
            return
        saved = FaceIndex.load(self.path, self._stamp, approx_from=self._approx_from)
        if saved is not None and saved[1]["seq"] <= store.last_change():
            self._index, self._seq = saved[0], saved[1]["seq"]
            self._saved = True

    def _rebuild(self, store: Store, embedder: str, dims: Callable[[], int]) -> None:
        """The index from scratch out of the database (inside the caller's snapshot)."""
        ids, vectors = store.embeddings(embedder)
        self._index = FaceIndex(vectors.shape[1] if len(ids) else dims(), approx_from=self._approx_from)
        if len(ids):
            self._index.add(ids, vectors)
        self._seq = store.last_change()
        if self.path is not None:
            self._save()

    def _save(self) -> None:
        """Write the index beside the database; a lock keeps two processes' files from mixing."""
        try:
            with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._index.save(self.path, dict(self._stamp, seq=self._seq))
            self._saved = True
        except OSError as e:  # a read-only folder: the index stays in memory, rebuilt next time
            log.info("search index not saved to %s (%s): kept in memory", self.path, e.strerror or e)
            self._saved = False
