"""AES-256-GCM for secrets at rest, with rotating keys.

A stored value reads ``v1:<key id>:<base64url(nonce || ciphertext+tag)>``. Keys come from
``FIELD_ENCRYPTION_KEYS`` ("kid:base64key", newest first): new values use the newest key, old values
decrypt with whichever key their id names, and ``manage.py rotate_encryption_keys`` re-encrypts
everything with the newest. A value that does not decrypt raises; ciphertext is never returned.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "v1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The value was not made by one of our keys, or was tampered with."""


@dataclass(frozen=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]  # newest first

    @property
    def current_kid(self) -> str:
        return self.keys[0][0]

    def encrypt(self, plaintext: str) -> str:
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), kid.encode())
        return f"{PREFIX}:{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str) -> str:
        try:
            prefix, kid, body = token.split(":", 2)
        except ValueError:
            raise DecryptionError("not an encrypted value") from None
        key = dict(self.keys).get(kid)
        if prefix != PREFIX or key is None:
            raise DecryptionError(f"no key with id {kid!r}")
        raw = base64.urlsafe_b64decode(body.encode())
        try:
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], kid.encode()).decode()
        except InvalidTag:
            raise DecryptionError(f"value does not authenticate under key {kid!r}") from None


def key_id_of(token: str) -> str | None:
    parts = token.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None


def parse_keys(specs: list[str]) -> Keyring:
    keys: list[tuple[str, bytes]] = []
    for spec in specs:
        kid, _, encoded = spec.partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded.encode())
        except ValueError:
            key = b""
        if not kid or len(key) != 32:
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS entries must be 'kid:base64' of a 32-byte key")
        keys.append((kid, key))
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: secrets cannot be stored")
    return Keyring(tuple(keys))


@lru_cache(maxsize=4)
def _keyring_for(specs: tuple[str, ...]) -> Keyring:
    return parse_keys(list(specs))


def keyring() -> Keyring:
    return _keyring_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def new_key_spec(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
