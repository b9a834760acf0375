"""The blob store interface (Orthanc's IStorageArea is the model) and the key rules."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from vetpacs.core.errors import Errors, VetpacsError

CHUNK_SIZE = 1024 * 1024
# Keys are made by new_blob_key(), never from user input: "ab/cd/<32 hex>".
_KEY_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}$")


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


def new_blob_key() -> str:
    h = uuid.uuid4().hex
    return f"{h[:2]}/{h[2:4]}/{h}"


def validate_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise VetpacsError(Errors.BAD_REQUEST, f"not a blob key: {key!r}")
    return key


def sha256_of(stream: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


@runtime_checkable
class BlobStore(Protocol):
    """Where blob bytes live. Every method takes a key from new_blob_key()."""

    name: str

    def put(self, key: str, stream: BinaryIO) -> BlobInfo:
        """Store the stream under key, durably, all or nothing; return its size and SHA-256."""
        ...

    def open(self, key: str, start: int = 0) -> BinaryIO:
        """A readable, seekable binary stream of the blob, positioned at byte `start` (past the end, it
        reads nothing); VetpacsError(BLOB_MISSING) if absent."""
        ...

    def open_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the blob."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def verify(self, key: str, sha256: str) -> bool:
        """True if the stored bytes hash to sha256."""
        ...

    def keys(self) -> Iterator[str]:
        """Every stored key (for the orphan sweep and `vetpacs verify`)."""
        ...
