"""API keys: created and revoked from the CLI, stored only as hashes, each with scopes.

A key reads ``fp_<id>_<secret>``. The id finds the stored row; the secret's SHA-256 is compared
with the stored hash in constant time. The secret is 256 random bits, so a fast hash is enough
(no password stretching needed) and the plain key exists only in the output of ``keys create``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..errors import FaceprintError
from ..gallery.store import KeyRow, Store

#: ``read``: detect, verify, identify, list people; ``enroll``: create people and add faces;
#: ``admin``: delete people, and everything else
SCOPES = ("read", "enroll", "admin")


def create_key(store: Store, name: str, scopes: list[str]) -> str:
    """Store a new key's hash and return the key itself (shown once, never stored)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise FaceprintError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    store.add_key(key_id, name, _digest(secret), sorted(set(scopes), key=SCOPES.index))
    return f"fp_{key_id}_{secret}"


def check_key(store: Store, token: str) -> KeyRow | None:
    """The live key row ``token`` is, or None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    row = store.key(key_id) if prefix == "fp" and key_id and secret else None
    # compare even when there is no row, so a missing id costs the same as a wrong secret
    ok = hmac.compare_digest(_digest(secret), row.hash if row else _digest(""))
    return row if ok and row is not None and row.revoked is None else None


def allows(row: KeyRow, scope: str) -> bool:
    return scope in row.scopes or "admin" in row.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
