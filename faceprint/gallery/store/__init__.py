"""The gallery's database: people, their faces, the faces' embeddings, and API keys.

One SQL layer (``_sql.py``), two engines. SQLite (``sqlite.py``) is the embedded default; PostgreSQL
(``postgres.py``) is the server backend that several processes or hosts share. Either way each
enrolment is one atomic transaction, so a killed process leaves every earlier enrolment intact and
nothing half-written, and concurrent writers queue instead of failing or losing rows.

Every add and remove of a face is also written to ``changes``, the log a search index follows to
stay in step with the database (``faceprint.gallery.vectors``). With a ``Sealer`` (``crypto.py``)
embeddings and face images are encrypted before they are written. ``open_store`` picks the engine.
"""

from __future__ import annotations

from pathlib import Path

from ..crypto import Sealer
from ._sql import (DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_ENV, SCHEMA_VERSION, FaceRow, NewFace, Removed, Store,
                   lock_timeout)
from .sqlite import SQLiteStore

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LOCK_TIMEOUT_ENV", "SCHEMA_VERSION", "FaceRow", "NewFace", "Removed",
           "SQLiteStore", "Store", "lock_timeout", "open_store"]


def open_store(location: str | Path, sealer: Sealer | None = None, *, readonly: bool = False) -> Store:
    """A ``postgresql://`` URL opens PostgreSQL; anything else is a SQLite file path.

    ``readonly`` (for commands that only read): the gallery must exist already (a mistyped path is
    refused, not made into an empty gallery), nothing is ever written (``write()`` refuses), and a
    SQLite gallery on a read-only file or folder can still be read.
    """
    if str(location).startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # psycopg only for a PostgreSQL gallery

        return PostgresStore(str(location), sealer, lock_timeout=lock_timeout())
    return SQLiteStore(location, sealer, lock_timeout=lock_timeout(), readonly=readonly)
