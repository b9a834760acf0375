"""Envelope encryption (AES-256-GCM) and keyed blind indexes. Pure functions, no key storage."""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
_VERSION = b"\x01"


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """version || nonce || ciphertext+tag; aad binds the ciphertext to its owner and field."""
    nonce = os.urandom(NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    if not sealed or sealed[:1] != _VERSION:
        raise ValueError("unknown envelope version")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)


def derive_key(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, purpose.encode(), hashlib.sha256).digest()


def normalise_for_index(value: str) -> str:
    """Exact match, forgiving only case, width and surrounding space (NFKC)."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def blind_index(key: bytes, value: str) -> str:
    return hmac.new(key, normalise_for_index(value).encode(), hashlib.sha256).hexdigest()
