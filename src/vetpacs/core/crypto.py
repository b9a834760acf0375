"""Envelope encryption (AES-256-GCM, or SM4-GCM when chosen) and keyed blind indexes. No key storage.

The first byte of a sealed value names its algorithm, so values sealed before a change of the
algorithm setting stay readable: choosing SM4-GCM (GB/T 32907, the national algorithm) affects new
seals only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16
_VERSION = b"\x01"  # AES-256-GCM
_VERSION_SM4 = b"\x02"  # SM4-GCM with a 128-bit key derived from the 256-bit data key
AES_256_GCM = "aes-256-gcm"
SM4_GCM = "sm4-gcm"
ALGORITHMS = (AES_256_GCM, SM4_GCM)
_algorithm = AES_256_GCM


def use_algorithm(name: str) -> None:
    """Choose the algorithm of new seals (settings.VETPACS_ENVELOPE_ALGORITHM calls this once)."""
    global _algorithm  # noqa: PLW0603 - one process-wide choice, made at start-up
    if name not in ALGORITHMS:
        raise ValueError(f"unknown envelope algorithm {name!r}; use one of {ALGORITHMS}")
    _algorithm = name


def _sm4_key(key: bytes) -> bytes:
    return hmac.new(key, b"sm4-gcm", hashlib.sha256).digest()[:16]


def _sm4_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(_sm4_key(key)), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def _sm4_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    body, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(_sm4_key(key)), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(body) + decryptor.finalize()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """version || nonce || ciphertext+tag; aad binds the ciphertext to its owner and field."""
    nonce = os.urandom(NONCE_BYTES)
    if _algorithm == SM4_GCM:
        return _VERSION_SM4 + nonce + _sm4_seal(key, nonce, plaintext, aad)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    version = sealed[:1]
    nonce = sealed[1 : 1 + NONCE_BYTES]
    if version == _VERSION:
        return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)
    if version == _VERSION_SM4:
        return _sm4_open(key, nonce, sealed[1 + NONCE_BYTES :], aad)
    raise ValueError("unknown envelope version")


def derive_key(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, purpose.encode(), hashlib.sha256).digest()


def normalise_for_index(value: str) -> str:
    """Exact match, forgiving only case, width and surrounding space (NFKC)."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def blind_index(key: bytes, value: str) -> str:
    return hmac.new(key, normalise_for_index(value).encode(), hashlib.sha256).hexdigest()
