"""API keys: created and revoked from the CLI, stored only as hashes, each with scopes.

A key reads ``fp_<id>_<secret>``. The id finds the stored row; the secret's SHA-256 is compared
with the stored hash in constant time. The secret is 256 random bits, so a fast hash is enough
(no password stretching needed) and the plain key exists only in the output of ``keys create``.
Keys live in the gallery's database (table ``api_keys``), so every server worker sharing it
accepts the same keys; opening them needs no model.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ..errors import FaceprintError
from .store import Store

#: ``read``: detect, verify, identify, list people; ``enroll``: create people and add faces;
#: ``admin``: delete people, and everything else
SCOPES = ("read", "enroll", "admin")

_COLUMNS = "id, name, hash, scopes, created, revoked"


@dataclass(frozen=True)
class KeyRow:
    id: str
    name: str
    hash: str
    scopes: tuple[str, ...]
    created: float
    revoked: float | None


def create_key(store: Store, name: str, scopes: list[str]) -> str:
    """Store a new key's hash and return the key itself (shown once, never stored)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise FaceprintError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with store.write():
        store._run("INSERT INTO api_keys(id, name, hash, scopes, created) VALUES (?, ?, ?, ?, ?)",
                   (key_id, name, _digest(secret), " ".join(sorted(set(scopes), key=SCOPES.index)), time.time()))
    return f"fp_{key_id}_{secret}"


def check_key(store: Store, token: str) -> KeyRow | None:
    """The live key row ``token`` is, or None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    row = _key(store, key_id) if prefix == "fp" and key_id and secret else None
    # compare even when there is no row, so a missing id costs the same as a wrong secret
    ok = hmac.compare_digest(_digest(secret), row.hash if row else _digest(""))
    return row if ok and row is not None and row.revoked is None else None


def allows(row: KeyRow, scope: str) -> bool:
    return scope in row.scopes or "admin" in row.scopes


def list_keys(store: Store) -> list[KeyRow]:
    return [_row(r) for r in store._all(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created")]


def revoke_key(store: Store, key_id: str) -> bool:
    """True if the key existed and was live."""
    with store.write():
        return store._run("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL RETURNING id",
                          (time.time(), key_id)).fetchone() is not None


def _key(store: Store, key_id: str) -> KeyRow | None:
    row = store._one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
    return _row(row) if row else None


def _row(r: tuple) -> KeyRow:
    return KeyRow(r[0], r[1], r[2], tuple(r[3].split()), r[4], r[5])


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
