"""SQLite storage for a gallery: people, their faces and the faces' embeddings.

SQLite in WAL mode with ``BEGIN IMMEDIATE`` write transactions: each enrolment is one atomic
transaction, so a killed process leaves every earlier enrolment intact and nothing half-written,
and concurrent writers queue on the lock (``busy_timeout``) instead of failing or losing rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GalleryError

#: 2 added ``changes``, the log the search index follows (a version 1 file is upgraded in place)
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT,
    image_sha256 TEXT NOT NULL,
    box TEXT NOT NULL,
    landmarks TEXT NOT NULL,
    detector TEXT NOT NULL,
    chip BLOB NOT NULL,
    chip_face TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (person_id, image_sha256)
);
CREATE TABLE IF NOT EXISTS embeddings (
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    embedder TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (face_id, embedder)
);
CREATE INDEX IF NOT EXISTS embeddings_by_embedder ON embeddings(embedder);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove', 'reset')),
    face_id INTEGER
);
"""


@dataclass(frozen=True)
class FaceRow:
    """A stored face. ``chip`` is a JPEG around the face and ``chip_face`` the face's box and
    landmarks inside it, so the face can be re-aligned and re-embedded without the source image."""

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


class Store:
    def __init__(self, path: str | Path, timeout: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise GalleryError(f"{self.path}: cannot open the gallery: {e}") from None
        # Switching to WAL and creating the schema can meet SQLITE_BUSY without SQLite's busy
        # handler being consulted when several processes open a new gallery at once: retry.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._setup()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise GalleryError(f"{self.path} is not a faceprint gallery database: {e}") from None
                if time.monotonic() > deadline:
                    raise GalleryError(f"{self.path}: gallery stayed locked for {timeout:.0f} s: {e}") from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:
                raise GalleryError(f"{self.path} is not a faceprint gallery database: {e}") from None

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self.write() as db:
            found = self.get_meta("schema")
            if found is not None and int(found) > SCHEMA_VERSION:
                raise GalleryError(f"{self.path} was written by a newer faceprint (schema {found})")
            if found != str(SCHEMA_VERSION):
                self.set_meta(db, "schema", str(SCHEMA_VERSION))
            if self.get_meta("gallery_id") is None:  # ties a saved search index to this database
                self.set_meta(db, "gallery_id", uuid.uuid4().hex)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction, taken up front so concurrent writers serialise cleanly."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the database, whatever other writers do."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   (key, value))

    @property
    def version(self) -> int:
        """Changes whenever any connection commits: cheap cache invalidation for in-memory matrices."""
        return self._db.execute("PRAGMA data_version").fetchone()[0] * 1_000_003 + self._db.total_changes

    # -- people and faces -------------------------------------------------------------------
    def add_face(self, person: str, embedder: str, vector: np.ndarray, *, source: str | None, image_sha256: str,
                 box: list[float], landmarks: dict, detector: str, chip: bytes, chip_face: dict) -> int | None:
        """Store one face of ``person`` (created if new); None if that image is already enrolled for them."""
        now = time.time()
        with self.write() as db:
            self._check_embedder(db, embedder)
            db.execute("INSERT INTO people(name, created) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (person, now))
            pid = db.execute("SELECT id FROM people WHERE name = ?", (person,)).fetchone()[0]
            cur = db.execute(
                "INSERT INTO faces(person_id, source, image_sha256, box, landmarks, detector, chip, chip_face, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(person_id, image_sha256) DO NOTHING",
                (pid, source, image_sha256, json.dumps(box), json.dumps(landmarks), detector, chip,
                 json.dumps(chip_face), now),
            )
            if cur.rowcount == 0:
                return None
            fid = cur.lastrowid
            db.execute("INSERT INTO embeddings(face_id, embedder, vector) VALUES (?, ?, ?)",
                       (fid, embedder, np.asarray(vector, np.float32).tobytes()))
            db.execute("INSERT INTO changes(op, face_id) VALUES ('add', ?)", (fid,))
            return fid

    def _check_embedder(self, db: sqlite3.Connection, embedder: str) -> None:
        current = self.get_meta("embedder")
        if current is None or (current != embedder and not self.count_faces()):
            self.set_meta(db, "embedder", embedder)  # an empty gallery takes the embedder of its first face
        elif current != embedder:
            raise GalleryError(
                f"this gallery holds {current} embeddings; embeddings of different models are never mixed "
                f"(run `faceprint reindex --embedder {embedder}` to switch it)"
            )

    def people(self) -> list[tuple[str, int, float]]:
        return self._db.execute(
            "SELECT p.name, COUNT(f.id), p.created FROM people p LEFT JOIN faces f ON f.person_id = p.id"
            " GROUP BY p.id ORDER BY p.name"
        ).fetchall()

    def faces(self, person: str | None = None) -> list[FaceRow]:
        sql = ("SELECT f.id, p.name, f.source, f.image_sha256, f.box, f.landmarks, f.detector, f.chip, f.chip_face,"
               " f.created FROM faces f JOIN people p ON p.id = f.person_id")
        rows = (self._db.execute(sql + " WHERE p.name = ? ORDER BY f.id", (person,)) if person is not None
                else self._db.execute(sql + " ORDER BY f.id"))
        return [FaceRow(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6], r[7], json.loads(r[8]),
                        r[9]) for r in rows]

    def has_person(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None

    def rename(self, old: str, new: str) -> None:
        with self.write() as db:
            if not db.execute("SELECT 1 FROM people WHERE name = ?", (old,)).fetchone():
                raise GalleryError(f"no person named {old!r}")
            if db.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise GalleryError(f"a person named {new!r} already exists")
            db.execute("UPDATE people SET name = ? WHERE name = ?", (new, old))

    def remove(self, name: str) -> int:
        """Delete a person with every face and embedding; returns how many faces went."""
        with self.write() as db:
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"no person named {name!r}")
            ids = [r[0] for r in db.execute("SELECT id FROM faces WHERE person_id = ?", (row[0],))]
            db.executemany("INSERT INTO changes(op, face_id) VALUES ('remove', ?)", [(i,) for i in ids])
            db.execute("DELETE FROM people WHERE id = ?", (row[0],))
            return len(ids)

    # -- embeddings -------------------------------------------------------------------------
    def embeddings(self, embedder: str, after: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(face ids, vectors)`` of ``embedder``'s embeddings, of faces with id > ``after``."""
        rows = self._db.execute(
            "SELECT face_id, vector FROM embeddings WHERE embedder = ? AND face_id > ? ORDER BY face_id",
            (embedder, after),
        ).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array([r[0] for r in rows], np.int64), np.stack([np.frombuffer(r[1], np.float32) for r in rows])

    def vectors_of(self, embedder: str, face_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(face ids, vectors)`` of those of ``face_ids`` that still exist."""
        found = [(i, np.frombuffer(v, np.float32)) for i in face_ids for (v,) in self._db.execute(
            "SELECT vector FROM embeddings WHERE embedder = ? AND face_id = ?", (embedder, i))]
        if not found:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array([i for i, _ in found], np.int64), np.stack([v for _, v in found])

    def names_of(self, face_ids: list[int]) -> dict[int, str]:
        """Person name per face id, for faces that still exist (a removed face has none)."""
        ids = sorted({int(i) for i in face_ids if i >= 0})
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self._db.execute(
            f"SELECT f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id WHERE f.id IN ({marks})", ids))

    def last_change(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def changes_since(self, seq: int) -> list[tuple[int, str, int | None]]:
        return self._db.execute("SELECT seq, op, face_id FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()

    def count_embeddings(self, embedder: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE embedder = ?", (embedder,)).fetchone()[0]

    def count_faces(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]

    def replace_embeddings(self, embedder: str, vectors: dict[int, np.ndarray]) -> None:
        """Switch the whole gallery to ``embedder`` in one transaction: all faces or none."""
        with self.write() as db:
            total = db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
            if set(vectors) != {r[0] for r in db.execute("SELECT id FROM faces")}:
                raise GalleryError(f"reindex covered {len(vectors)} of {total} faces; gallery left unchanged")
            db.execute("DELETE FROM embeddings")
            db.executemany("INSERT INTO embeddings(face_id, embedder, vector) VALUES (?, ?, ?)",
                           [(fid, embedder, np.asarray(v, np.float32).tobytes()) for fid, v in vectors.items()])
            self.set_meta(db, "embedder", embedder)
            db.execute("INSERT INTO changes(op) VALUES ('reset')")
