"""Encryption at rest for what a gallery stores about faces (embeddings and face images).

Embeddings are biometric data: whoever copies the database must not be able to use them. With a
key in ``FACEPRINT_ENCRYPTION_KEY`` (32 random bytes, base64: ``openssl rand -base64 32``), every
vector and face image is sealed with AES-256-GCM before it is written, bound to what it is (so a
sealed vector cannot be passed off as another row's). The database records a fingerprint of the
key, so opening it with no key or another key is refused instead of answering nonsense.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import GalleryError

KEY_ENV = "FACEPRINT_ENCRYPTION_KEY"
_NONCE = 12


class Sealer:
    """AES-256-GCM with a random nonce per value; ``fingerprint`` identifies the key, not reveals it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise GalleryError(f"{KEY_ENV} must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")
        self._aead = AESGCM(key)
        self.fingerprint = hmac.new(key, b"faceprint gallery key", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_env(cls) -> Sealer | None:
        raw = os.environ.get(KEY_ENV, "").strip()
        if not raw:
            return None
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None,
                                   validate=True)
        except (binascii.Error, ValueError):
            raise GalleryError(f"{KEY_ENV} is not base64 (make one with `openssl rand -base64 32`)") from None
        return cls(key)

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, data: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(data[:_NONCE], data[_NONCE:], context.encode())
        except InvalidTag:
            raise GalleryError(f"stored {context} failed its integrity check (tampered, or sealed with another key)"
                               ) from None
