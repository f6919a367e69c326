"""SQLite engine: the embedded default, one file in WAL mode with ``BEGIN IMMEDIATE`` write transactions."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ...errors import BusyError, GalleryError
from ..crypto import Sealer
from ._sql import DEFAULT_LOCK_TIMEOUT, Store


class SQLiteStore(Store):
    """A gallery in one SQLite file, in WAL mode: writes go through one connection under the write
    lock, reads through another, so reads see the last commit while a writer (in this process or
    another) holds the database's write lock."""

    _ID, _BLOB, _REAL = "INTEGER PRIMARY KEY", "BLOB", "REAL"

    def __init__(self, path: str | Path, sealer: Sealer | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 readonly: bool = False):
        super().__init__(str(path), sealer, lock_timeout)
        self.path = Path(path)
        self.readonly = readonly
        self._read_lock = threading.RLock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        if readonly:
            if not self.path.is_file():
                raise GalleryError(f"no gallery at {self.path}; enrol someone first or check --db")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                why = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
                raise GalleryError(f"{self.path}: cannot make its folder {self.path.parent}: {why or e}") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        try:
            if self.readonly:
                self._reader = self._connect_readonly()
            else:
                self._writer = self._connect(str(self.path))
                self._reader = self._connect(str(self.path))
        except sqlite3.Error as e:
            raise self._error(e) from None
        # Switching to WAL and creating the schema can meet SQLITE_BUSY without SQLite's busy
        # handler being consulted when several processes open a new gallery at once: retry.
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                with self._reading():
                    self._refuse_foreign(self._tables())  # before WAL mode is written into its header
                if self._writer is not None:
                    self._execute(self._writer, "PRAGMA journal_mode=WAL")
                    self._execute(self._writer, "PRAGMA foreign_keys=ON")
                    self._execute(self._writer, "PRAGMA synchronous=NORMAL")
                self._setup()
                return
            except BusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connect_readonly(self) -> sqlite3.Connection:
        """A connection that can read the gallery. Opened as usual where the file allows it (SQLite
        itself opens a file it cannot write read-only, and closing tidies the WAL files away as
        usual; ``write()`` refuses anyway); a WAL gallery in a read-only folder, closed cleanly,
        lacks the shared-memory file a reader needs and cannot create it, and nobody can be writing
        it meanwhile: it is read as immutable."""
        db = self._connect(str(self.path))
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            return db
        except sqlite3.OperationalError:
            db.close()
            if os.access(self.path.parent, os.W_OK):
                raise
        return self._connect(f"file:{quote(str(self.path.absolute()))}?immutable=1")

    def _connect(self, target: str) -> sqlite3.Connection:
        return sqlite3.connect(target, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False,
                               uri=target.startswith("file:"))

    def _ddl(self) -> list[str]:
        # SQLite numbers INTEGER PRIMARY KEY itself; AUTOINCREMENT keeps log sequence numbers from being reused
        return [s.replace("seq INTEGER PRIMARY KEY", "seq INTEGER PRIMARY KEY AUTOINCREMENT") for s in super()._ddl()]

    def _tables(self) -> set[str]:
        return {r[0] for r in self._run("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}

    def _refuse_foreign(self, tables: set[str]) -> None:
        others = tables - {"sqlite_sequence"}
        if not others:
            return  # a new, empty file
        try:
            ours = "meta" in others and self._run("SELECT 1 FROM meta WHERE key = 'schema'").fetchone() is not None
        except sqlite3.Error:
            ours = False
        if not ours:
            raise GalleryError(f"{self.path} is a SQLite database but not a faceprint gallery (its tables: "
                               f"{', '.join(sorted(others)[:5])}{', ...' if len(others) > 5 else ''}); "
                               "it was left untouched: point --db at a gallery or a new file")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self._writing():  # inside write(): its own connection, already this thread's
            yield
        else:
            with self._read_lock:
                yield

    def _run(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self._execute(self._writer if self._writing() else self._reader, sql, params)

    def _execute(self, db: sqlite3.Connection, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        """Run a statement; SQLite's errors about the file itself become one-line ``FaceprintError``s."""
        try:
            return db.execute(sql, params)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def _error(self, e: sqlite3.Error) -> Exception:
        """SQLite's errors about the file itself as one-line ``FaceprintError``s; others (bugs) as they are."""
        text = str(e)
        if "locked" in text or "busy" in text:
            return self._busy()
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            where = "" if os.access(self.path.parent, os.W_OK) else \
                f" (its folder {self.path.parent} is read-only: only commands that read work on it)"
            return GalleryError(f"{self.path}: cannot open the gallery: {text}{where}")
        if "not a database" in text:
            return GalleryError(f"{self.path} is not a faceprint gallery database: {text}")
        if "malformed" in text or "disk I/O" in text:
            return GalleryError(f"{self.path}: the gallery database is damaged ({text}); restore it from a backup")
        return e

    def _begin_write(self, deadline: float) -> None:
        self._run(f"PRAGMA busy_timeout = {max(0, int((deadline - time.monotonic()) * 1000))}")
        self._run("BEGIN IMMEDIATE")

    def _begin_read(self) -> None:
        self._run("BEGIN")

    @property
    def version(self) -> int:
        # the read connection's data_version moves with every commit made through any other connection,
        # this store's writer included
        return self._one("PRAGMA data_version")[0]

    def close(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                db.close()
