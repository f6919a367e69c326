"""The SQL both store engines share: the schema, the records, and every query.

Engines (``sqlite.py``, ``postgres.py``) only connect, open transactions and run statements.
The ``api_keys`` table is created here with the others (one schema, upgraded in one place); its
rows are read and written by ``faceprint.gallery.keys``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BusyError, GalleryError, PersonExistsError, UnknownPersonError
from ..crypto import KEY_ENV, Sealer
from ..names import lookup_name, valid_name

#: 2 added ``changes``, the log the search index follows; 3 added ``api_keys`` (older files are
#: upgraded in place: both are new tables)
SCHEMA_VERSION = 3

#: Seconds a write waits for the database's write lock before giving up with ``BusyError``
LOCK_TIMEOUT_ENV = "FACEPRINT_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 5.0

#: Written once per engine by ``_ddl``: ``{id}`` an auto-numbered key, ``{blob}`` bytes, ``{real}`` a float.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id {id},
    name TEXT NOT NULL UNIQUE,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id {id},
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    image_sha256 TEXT NOT NULL,
    box TEXT NOT NULL,
    landmarks TEXT NOT NULL,
    detector TEXT NOT NULL,
    chip {blob} NOT NULL,
    chip_face TEXT NOT NULL,
    created {real} NOT NULL,
    UNIQUE (person_id, image_sha256)
);
CREATE INDEX IF NOT EXISTS faces_by_person ON faces(person_id);
CREATE TABLE IF NOT EXISTS embeddings (
    face_id BIGINT NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    embedder TEXT NOT NULL,
    vector {blob} NOT NULL,
    PRIMARY KEY (face_id, embedder)
);
CREATE INDEX IF NOT EXISTS embeddings_by_embedder ON embeddings(embedder);
CREATE TABLE IF NOT EXISTS changes (
    seq {id},
    op TEXT NOT NULL CHECK (op IN ('add', 'remove', 'reset')),
    face_id BIGINT
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created {real} NOT NULL,
    revoked {real}
);
"""


@dataclass(frozen=True)
class FaceRow:
    """A stored face. ``chip`` is a JPEG around the face (empty when images are not kept) and
    ``chip_face`` the face's box and landmarks inside it, so the face can be re-aligned and
    re-embedded without the source image."""

    id: int
    person: str
    source: str | None
    image_sha256: str
    box: list[float]
    landmarks: dict[str, list[float]]
    detector: str
    chip: bytes
    chip_face: dict
    created: float


@dataclass(frozen=True)
class NewFace:
    """A face to store: who, the embedding, where it was found, and its chip (``faceprint.chips``;
    empty when images are not kept). ``box`` and ``landmarks`` are in the source image's pixels."""

    person: str
    embedder: str
    vector: np.ndarray
    image_sha256: str
    box: list[float]
    landmarks: dict[str, list[float]]
    detector: str
    source: str | None = None
    chip: bytes = b""
    chip_face: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Removed:
    """What deleting a person erased."""

    faces: int
    embeddings: int
    images: int


def lock_timeout() -> float:
    """The write-lock wait: $FACEPRINT_LOCK_TIMEOUT seconds, else ``DEFAULT_LOCK_TIMEOUT``."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV) or str(DEFAULT_LOCK_TIMEOUT)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise GalleryError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds, not {raw!r}")
    return seconds


class Store:
    """The SQL both engines share; subclasses connect, open transactions and run statements.

    Safe to share between threads (a threaded web server). A writer holds ``_lock`` for its whole
    transaction and waits at most ``lock_timeout`` seconds, for that lock and for the database's
    write lock together, then raises ``BusyError`` having written nothing. Reads outside a write hold
    what ``_reading`` holds: the same lock for an engine with one connection (PostgreSQL), and no lock
    a writer holds for SQLite, whose reads have their own connection and never wait behind a writer.
    """

    #: ``path`` of a file database (where a search index may be saved beside it), else None
    path: Path | None = None
    #: opened for reading only (``open_store(readonly=True)``)
    readonly = False
    _ID = _BLOB = _REAL = ""  # column types for _SCHEMA

    def __init__(self, location: str, sealer: Sealer | None, lock_timeout: float) -> None:
        self.location = location
        self.lock_timeout = lock_timeout
        self._sealer = sealer
        self._lock = threading.RLock()
        self._writer_thread: int | None = None  # the thread inside write(), if any

    # -- engine hooks ------------------------------------------------------------------------
    def _run(self, sql: str, params: tuple | list = ()) -> Any:
        """Execute one statement (``?`` placeholders) and return its cursor."""
        raise NotImplementedError

    def _begin_write(self, deadline: float) -> None:
        """Begin a transaction holding the database's write lock, or ``BusyError`` once
        ``time.monotonic()`` passes ``deadline``."""
        raise NotImplementedError

    def _begin_read(self) -> None:
        raise NotImplementedError

    def _tables(self) -> set[str]:
        """The names of the tables in the database."""
        raise NotImplementedError

    def _refuse_foreign(self, tables: set[str]) -> None:
        """Refuse a database that holds something other than a gallery (a SQLite file is one
        gallery; a PostgreSQL database may be shared with other tables)."""

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Held around reads outside a write transaction."""
        with self._lock:
            yield

    @property
    def version(self) -> int:
        """Changes whenever faces are added or removed by anyone: cheap check for in-memory indexes."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- setup and transactions ----------------------------------------------------------------
    def _ddl(self) -> list[str]:
        schema = _SCHEMA.format(id=self._ID, blob=self._BLOB, real=self._REAL)
        return [s.strip() for s in schema.split(";") if s.strip()]

    def _setup(self) -> None:
        """Create or upgrade the tables only when something needs writing: opening a current gallery
        takes no write lock, so it opens while another process writes, and opens read-only."""
        if self._current():
            return
        if self.readonly:
            raise GalleryError(f"{self.location}: this gallery was written by an older faceprint; open it once "
                               "with a command that writes (e.g. `faceprint enroll`) to upgrade it")
        with self.write():
            tables = self._tables()
            self._refuse_foreign(tables)
            for statement in self._ddl():
                self._run(statement)
            self._check_schema()
            if self.get_meta("schema") != str(SCHEMA_VERSION):
                self.set_meta("schema", str(SCHEMA_VERSION))
            if self.get_meta("gallery_id") is None:  # ties a saved search index to this database
                self.set_meta("gallery_id", uuid.uuid4().hex)
            self._check_sealing(fix=True)

    def _current(self) -> bool:
        """Whether the gallery opens as it is: its tables current, its id and encryption settled."""
        with self.snapshot():
            tables = self._tables()
            self._refuse_foreign(tables)
            if "meta" not in tables:
                if self.readonly:
                    raise GalleryError(f"no gallery at {self.location}; enrol someone first or check --db")
                return False
            self._check_schema()
            return (self.get_meta("schema") == str(SCHEMA_VERSION) and self.get_meta("gallery_id") is not None
                    and self._check_sealing(fix=False))

    def _check_schema(self) -> None:
        found = self.get_meta("schema")
        if found is not None and int(found) > SCHEMA_VERSION:
            raise GalleryError(f"{self.location} was written by a newer faceprint (schema {found})")

    def _check_sealing(self, fix: bool) -> bool:
        """Refuse a key the data was not sealed with, and plain data where a key is set (or the reverse).

        True when the key matches; an empty gallery takes the key (or none) of its first writer: with
        ``fix`` (inside ``write()``) it is recorded, else False says it needs recording (a reader just
        reads: there is nothing sealed to open)."""
        sealed = self.get_meta("sealed")
        mine = self._sealer.fingerprint if self._sealer else None
        if sealed == mine:
            return True
        if self._run("SELECT 1 FROM faces LIMIT 1").fetchone() is None:
            if not fix:
                return self.readonly
            if mine:
                self.set_meta("sealed", mine)
            else:
                self._run("DELETE FROM meta WHERE key = 'sealed'")
            return True
        if sealed and not mine:
            raise GalleryError(f"{self.location}: this gallery is encrypted; set {KEY_ENV} to its key")
        if sealed:
            raise GalleryError(f"{self.location}: {KEY_ENV} is not the key this gallery was encrypted with")
        raise GalleryError(f"{self.location}: this gallery holds unencrypted faces; unset {KEY_ENV} to open it")

    def _busy(self) -> BusyError:
        return BusyError(f"{self.location}: the gallery is busy: another writer held its write lock for "
                         f"{self.lock_timeout:g} s; nothing was written, try again ({LOCK_TIMEOUT_ENV} sets the wait)")

    def _writing(self) -> bool:
        """Whether the calling thread is inside ``write()``."""
        return self._writer_thread == threading.get_ident()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One atomic write transaction, taken up front so concurrent writers serialise cleanly."""
        if self.readonly:
            raise GalleryError(f"{self.location}: the gallery was opened read-only")
        deadline = time.monotonic() + self.lock_timeout
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise self._busy()
        try:
            self._writer_thread = threading.get_ident()
            self._begin_write(deadline)
            try:
                yield
            except BaseException:
                self._run("ROLLBACK")
                raise
            else:
                self._run("COMMIT")
        finally:
            self._writer_thread = None
            self._lock.release()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the database, whatever other writers do."""
        with self._reading():
            self._begin_read()
            try:
                yield
            finally:
                self._run("COMMIT")

    def _one(self, sql: str, params: tuple | list = ()) -> Any:
        with self._reading():
            return self._run(sql, params).fetchone()

    def _all(self, sql: str, params: tuple | list = ()) -> list:
        with self._reading():
            return self._run(sql, params).fetchall()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Inside ``write()``."""
        self._run("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                  (key, value))

    @property
    def sealed(self) -> bool:
        return self._sealer is not None

    def _seal(self, data: bytes, context: str) -> bytes:
        return self._sealer.seal(data, context) if self._sealer and data else data

    def _unseal(self, data: bytes, context: str) -> bytes:
        return self._sealer.open(bytes(data), context) if self._sealer and data else bytes(data)

    def _vector_out(self, face_id: int, embedder: str, blob: bytes) -> np.ndarray:
        return np.frombuffer(self._unseal(blob, f"embedding {face_id} {embedder}"), np.float32)

    def _vector_in(self, face_id: int, embedder: str, vector: np.ndarray) -> bytes:
        return self._seal(np.asarray(vector, np.float32).tobytes(), f"embedding {face_id} {embedder}")

    # -- people and faces -------------------------------------------------------------------
    def add_person(self, name: str) -> str:
        """Create a person; returns the name as stored (``names.valid_name``)."""
        name = valid_name(name)
        with self.write():
            if self._run("INSERT INTO people(name, created) VALUES (?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
                         (name, time.time())).fetchone() is None:
                raise PersonExistsError(f"a person named {name!r} already exists")
        return name

    def add_face(self, face: NewFace, *, create: bool = True) -> int | None:
        """Store one face (its person created if new, unless not ``create``); None if that image is
        already enrolled for them."""
        person = valid_name(face.person) if create else lookup_name(face.person)
        embedder, sha = face.embedder, face.image_sha256
        now = time.time()
        with self.write():
            self._check_embedder(embedder)
            if create:
                self._run("INSERT INTO people(name, created) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (person, now))
            row = self._run("SELECT id FROM people WHERE name = ?", (person,)).fetchone()
            if row is None:
                raise UnknownPersonError(f"no person named {person!r}")
            pid = row[0]
            row = self._run(
                "INSERT INTO faces(person_id, source, image_sha256, box, landmarks, detector, chip, chip_face, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(person_id, image_sha256) DO NOTHING RETURNING id",
                (pid, face.source, sha, json.dumps(face.box), json.dumps(face.landmarks), face.detector,
                 self._seal(face.chip, f"face image {sha}"), json.dumps(face.chip_face), now),
            ).fetchone()
            if row is None:
                return None
            fid = row[0]
            self._run("INSERT INTO embeddings(face_id, embedder, vector) VALUES (?, ?, ?)",
                      (fid, embedder, self._vector_in(fid, embedder, face.vector)))
            self._run("INSERT INTO changes(op, face_id) VALUES ('add', ?)", (fid,))
            return fid

    def _check_embedder(self, embedder: str) -> None:
        current = self.get_meta("embedder")
        if current is None or (current != embedder and not self.count_faces()):
            self.set_meta("embedder", embedder)  # an empty gallery takes the embedder of its first face
        elif current != embedder:
            raise GalleryError(
                f"this gallery holds {current} embeddings; embeddings of different models are never mixed "
                f"(run `faceprint reindex --embedder {embedder}` to switch it)"
            )

    def people(self) -> list[tuple[str, int, float]]:
        return [tuple(r) for r in self._all(
            "SELECT p.name, COUNT(f.id), p.created FROM people p LEFT JOIN faces f ON f.person_id = p.id"
            " GROUP BY p.id, p.name, p.created ORDER BY p.name")]

    def faces(self, person: str | None = None) -> list[FaceRow]:
        sql = ("SELECT f.id, p.name, f.source, f.image_sha256, f.box, f.landmarks, f.detector, f.chip, f.chip_face,"
               " f.created FROM faces f JOIN people p ON p.id = f.person_id")
        rows = (self._all(sql + " WHERE p.name = ? ORDER BY f.id", (lookup_name(person),)) if person is not None
                else self._all(sql + " ORDER BY f.id"))
        return [FaceRow(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6],
                        self._unseal(r[7], f"face image {r[3]}"), json.loads(r[8]), r[9]) for r in rows]

    def has_person(self, name: str) -> bool:
        return self._one("SELECT 1 FROM people WHERE name = ?", (lookup_name(name),)) is not None

    def rename(self, old: str, new: str) -> str:
        """Returns the new name as stored."""
        old, new = lookup_name(old), valid_name(new)
        with self.write():
            if not self._run("SELECT 1 FROM people WHERE name = ?", (old,)).fetchone():
                raise UnknownPersonError(f"no person named {old!r}")
            if self._run("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise PersonExistsError(f"a person named {new!r} already exists")
            self._run("UPDATE people SET name = ? WHERE name = ?", (new, old))
        return new

    def remove(self, name: str) -> Removed:
        """Delete a person with every face, embedding and face image, in one transaction."""
        name = lookup_name(name)
        with self.write():
            row = self._run("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownPersonError(f"no person named {name!r}")
            faces = self._run("SELECT id, length(chip) > 0 FROM faces WHERE person_id = ?", (row[0],)).fetchall()
            embeddings = self._run("SELECT COUNT(*) FROM embeddings e JOIN faces f ON f.id = e.face_id"
                                   " WHERE f.person_id = ?", (row[0],)).fetchone()[0]
            for fid, _ in faces:
                self._run("INSERT INTO changes(op, face_id) VALUES ('remove', ?)", (fid,))
            self._run("DELETE FROM people WHERE id = ?", (row[0],))  # faces and embeddings go by cascade
            return Removed(faces=len(faces), embeddings=embeddings, images=sum(bool(c) for _, c in faces))

    # -- embeddings -------------------------------------------------------------------------
    def embeddings(self, embedder: str, after: int = 0, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(face ids, vectors)`` of ``embedder``'s embeddings, of faces with id > ``after``, in id
        order; ``limit`` pages through a gallery too large to read at once."""
        sql = "SELECT face_id, vector FROM embeddings WHERE embedder = ? AND face_id > ? ORDER BY face_id"
        rows = (self._all(sql + " LIMIT ?", (embedder, after, limit)) if limit is not None
                else self._all(sql, (embedder, after)))
        return self._vectors(rows, embedder)

    def vectors_of(self, embedder: str, face_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(face ids, vectors)`` of those of ``face_ids`` that still exist."""
        rows = []
        for start in range(0, len(face_ids), 500):  # bounded IN lists
            ids = [int(i) for i in face_ids[start:start + 500]]
            rows += self._all(f"SELECT face_id, vector FROM embeddings WHERE embedder = ? AND face_id IN"
                              f" ({','.join('?' * len(ids))}) ORDER BY face_id", [embedder, *ids])
        return self._vectors(rows, embedder)

    def _vectors(self, rows: list, embedder: str) -> tuple[np.ndarray, np.ndarray]:
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return (np.array([r[0] for r in rows], np.int64),
                np.stack([self._vector_out(r[0], embedder, r[1]) for r in rows]))

    def names_of(self, face_ids: list[int]) -> dict[int, str]:
        """Person name per face id, for faces that still exist (a removed face has none)."""
        ids = sorted({int(i) for i in face_ids if i >= 0})
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self._all(f"SELECT f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id"
                              f" WHERE f.id IN ({marks})", ids))

    def last_change(self) -> int:
        return self._one("SELECT COALESCE(MAX(seq), 0) FROM changes")[0]

    def changes_since(self, seq: int) -> list[tuple[int, str, int | None]]:
        return [tuple(r) for r in self._all("SELECT seq, op, face_id FROM changes WHERE seq > ? ORDER BY seq", (seq,))]

    def count_embeddings(self, embedder: str) -> int:
        return self._one("SELECT COUNT(*) FROM embeddings WHERE embedder = ?", (embedder,))[0]

    def count_faces(self) -> int:
        return self._one("SELECT COUNT(*) FROM faces")[0]

    def count_people(self) -> int:
        return self._one("SELECT COUNT(*) FROM people")[0]

    def replace_embeddings(self, embedder: str, vectors: dict[int, np.ndarray]) -> None:
        """Switch the whole gallery to ``embedder`` in one transaction: all faces or none."""
        with self.write():
            total = self._run("SELECT COUNT(*) FROM faces").fetchone()[0]
            if set(vectors) != {r[0] for r in self._run("SELECT id FROM faces").fetchall()}:
                raise GalleryError(f"reindex covered {len(vectors)} of {total} faces; gallery left unchanged")
            self._run("DELETE FROM embeddings")
            for fid, v in vectors.items():
                self._run("INSERT INTO embeddings(face_id, embedder, vector) VALUES (?, ?, ?)",
                          (fid, embedder, self._vector_in(fid, embedder, v)))
            self.set_meta("embedder", embedder)
            self._run("INSERT INTO changes(op) VALUES ('reset')")
