"""Local-file blob store: write to a temporary name, fsync, rename; paths only from our own keys."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.storage.base import CHUNK_SIZE, BlobInfo, sha256_of, validate_key

# Blob folders are "ab/cd": 65536 at most, so remembering every one seen stays small.
MAX_KNOWN_FOLDERS = 65536 + 256


class LocalBlobStore:
    def __init__(self, root: str | os.PathLike[str], name: str = "local") -> None:
        self.root = Path(root)
        self.name = name
        self.root.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    @contextlib.contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        """Disk errors (full, read-only, gone) become STORAGE_FAILED; the source's errors pass as they are."""
        try:
            yield
        except OSError as exc:
            raise VetpacsError(
                Errors.STORAGE_FAILED, f"blob {key}: writing to {self.name} failed: {exc}"
            ) from exc

    def put(self, key: str, stream: BinaryIO) -> BlobInfo:
        path = self._path(key)
        with self._writing(key):
            fd, tmp = self._temporary(path.parent)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    h.update(chunk)
                    size += len(chunk)
                    with self._writing(key):
                        out.write(chunk)
                with self._writing(key):
                    out.flush()
                    os.fsync(out.fileno())
            with self._writing(key):
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory entry is on disk.
        with self._writing(key):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return BlobInfo(key=key, size=size, sha256=h.hexdigest())

    def _temporary(self, folder: Path) -> tuple[int, str]:
        """A new temporary file in folder, made (with its parents) on first use.

        Folders seen in this process are not made again: a new blob costs no mkdir once its
        folder exists. A folder removed behind our back is made again."""
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
        try:
            made = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            made = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        if len(self._folders) < MAX_KNOWN_FOLDERS:
            self._folders.add(folder)
        return made

    def open(self, key: str, start: int = 0) -> BinaryIO:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError:
            raise VetpacsError(Errors.BLOB_MISSING, f"blob {key} is missing from {self.name}") from None
        if start:
            f.seek(start)
        return f

    def open_range(self, key: str, start: int, end: int) -> bytes:
        with self.open(key) as f:
            f.seek(start)
            return f.read(max(0, end - start))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def verify(self, key: str, sha256: str) -> bool:
        try:
            with self.open(key) as f:
                return sha256_of(f)[0] == sha256
        except VetpacsError as exc:
            if exc.error is Errors.BLOB_MISSING:
                return False
            raise  # a key that is not a blob key is the caller's error, not a failed check

    def keys(self) -> Iterator[str]:
        for p in self.root.glob("??/??/*"):
            if p.is_file() and not p.name.startswith(".tmp-"):
                yield f"{p.parent.parent.name}/{p.parent.name}/{p.name}"

    def temporary_files(self) -> Iterator[Path]:
        """Leftovers of writes interrupted by a crash (swept at start-up)."""
        yield from self.root.glob("??/??/.tmp-*")
