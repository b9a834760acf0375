"""Replicating blob store: every blob kept as N checked copies on different backends (R-6.2.1a)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.storage.base import BlobInfo, BlobStore, validate_key
from vetpacs.storage.factory import build_store
from vetpacs.storage.local import LocalBlobStore

log = logging.getLogger(__name__)

# A copy that cannot be read for either reason is skipped; the next copy may serve the read.
_T = TypeVar("_T")
_UNREADABLE = frozenset({Errors.BLOB_MISSING.code, Errors.STORAGE_FAILED.code})


class ReplicatingBlobStore:
    """Writes every blob to all its backends; reads from the first copy that answers."""

    def __init__(self, stores: Sequence[BlobStore]) -> None:
        if len(stores) < 2:
            raise ValueError("a replicated blob store needs at least two backends")
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            raise ValueError(f"replicated blob store backends need distinct names, got {names}")
        self.stores = list(stores)
        self.location_names = names
        self.name = f"replicated({','.join(names)})"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReplicatingBlobStore:
        """Backends from config["replicas"] (a list of backend configs), else from the flat keys.

        Flat keys: the local store at local_root (named "local"), one local store per entry of
        replica_roots ("name=/path" or "/path", named local-2, local-3, ...), and the S3 bucket
        of the s3_* keys when replica_s3 is true (named "s3").
        """
        replicas = config.get("replicas")
        if replicas:
            subconfigs = [dict(r) for r in replicas]
        else:
            subconfigs = [{"backend": "local", "local_root": config["local_root"], "name": "local"}]
            for i, entry in enumerate(config.get("replica_roots") or [], start=2):
                name, sep, root = str(entry).partition("=")
                if not sep:
                    name, root = f"local-{i}", name
                subconfigs.append({"backend": "local", "local_root": root, "name": name})
            if config.get("replica_s3"):
                subconfigs.append({**config, "backend": "s3", "name": config.get("s3_name") or "s3"})
        for sub in subconfigs:
            if sub.get("backend", "local") == "replicated":
                raise ValueError("a replica cannot itself be a replicated store")
        return cls([_build(sub) for sub in subconfigs])

    # -- writing ---------------------------------------------------------------------------------

    def put(self, key: str, stream: BinaryIO) -> BlobInfo:
        """All copies written and agreeing on the SHA-256, or none left anywhere (STORAGE_FAILED)."""
        validate_key(key)
        first, *others = self.stores
        try:
            info = first.put(key, stream)
        except BaseException:
            self._discard(key)
            raise  # a failing source stream is the caller's error, told as it was
        try:
            for store in others:
                # Each replica is copied from the stored first copy, not the source: a copy that
                # hashes alike proves the first copy's bytes too.
                try:
                    with first.open(key) as f:
                        copy = store.put(key, f)
                except Exception as exc:
                    raise VetpacsError(
                        Errors.STORAGE_FAILED, f"blob {key}: copy on {store.name} failed: {exc}"
                    ) from exc
                if (copy.sha256, copy.size) != (info.sha256, info.size):
                    raise VetpacsError(
                        Errors.STORAGE_FAILED,
                        f"blob {key}: copy on {store.name} has SHA-256 {copy.sha256} ({copy.size} bytes), "
                        f"{first.name} has {info.sha256} ({info.size} bytes)",
                    )
        except BaseException:
            self._discard(key)
            raise
        return info

    def _discard(self, key: str) -> None:
        for store in self.stores:
            try:
                store.delete(key)
            except Exception as exc:
                # The orphan sweep retries: the key stays pending until it is gone everywhere.
                log.warning("blob %s: partial copy on %s not removed: %s", key, store.name, exc)

    def delete(self, key: str) -> None:
        validate_key(key)
        failures = []
        for store in self.stores:
            try:
                store.delete(key)
            except Exception as exc:
                failures.append(f"{store.name}: {exc}")
        if failures:
            raise VetpacsError(Errors.STORAGE_FAILED, f"blob {key} not deleted from " + "; ".join(failures))

    # -- reading ---------------------------------------------------------------------------------

    def open(self, key: str, start: int = 0) -> BinaryIO:
        return self._from_first_readable(key, lambda store: store.open(key, start))

    def open_range(self, key: str, start: int, end: int) -> bytes:
        return self._from_first_readable(key, lambda store: store.open_range(key, start, end))

    def _from_first_readable(self, key: str, read: Callable[[BlobStore], _T]) -> _T:
        """Read from the first copy that answers; a missing or failing copy falls through."""
        validate_key(key)
        reasons = []
        for store in self.stores:
            try:
                return read(store)
            except VetpacsError as exc:
                if exc.code not in _UNREADABLE:
                    raise
                reasons.append(f"{store.name}: {exc.detail}")
        raise VetpacsError(
            Errors.BLOB_MISSING, f"blob {key} is missing from every replica ({'; '.join(reasons)})"
        )

    def exists(self, key: str) -> bool:
        """True while any copy is there: the blob can still be read (verify_each tells which copies)."""
        validate_key(key)
        for store in self.stores:
            with contextlib.suppress(VetpacsError):
                if store.exists(key):
                    return True
        return False

    def keys(self) -> Iterator[str]:
        seen: set[str] = set()
        for store in self.stores:
            for key in store.keys():
                if key not in seen:
                    seen.add(key)
                    yield key

    # -- checking and repairing ------------------------------------------------------------------

    def verify_each(self, key: str, sha256: str) -> dict[str, bool]:
        """For every location: does its copy exist and hash to sha256?"""
        validate_key(key)
        result = {}
        for store in self.stores:
            try:
                result[store.name] = store.verify(key, sha256)
            except VetpacsError as exc:
                log.warning("blob %s: copy on %s could not be checked: %s", key, store.name, exc)
                result[store.name] = False
        return result

    def verify(self, key: str, sha256: str) -> bool:
        """True only if every copy is there and intact (R-7.3.4.1b)."""
        return all(self.verify_each(key, sha256).values())

    def repair(self, key: str, sha256: str) -> list[str]:
        """Re-copy a good copy over every missing or corrupt one; returns the locations repaired."""
        status = self.verify_each(key, sha256)
        good = next((s for s in self.stores if status[s.name]), None)
        if good is None:
            raise VetpacsError(
                Errors.BLOB_CORRUPT, f"blob {key}: no intact copy left on any of {self.location_names}"
            )
        repaired = []
        for store in self.stores:
            if status[store.name]:
                continue
            with good.open(key) as f:
                copy = store.put(key, f)
            if copy.sha256 != sha256:
                store.delete(key)
                raise VetpacsError(
                    Errors.STORAGE_FAILED,
                    f"blob {key}: repaired copy on {store.name} hashes to {copy.sha256}",
                )
            log.info("blob %s: copy on %s repaired from %s", key, store.name, good.name)
            repaired.append(store.name)
        return repaired

    def temporary_files(self) -> Iterator[Path]:
        """Leftovers of interrupted local writes on every local replica (for the orphan sweep)."""
        for store in self.stores:
            if isinstance(store, LocalBlobStore):
                yield from store.temporary_files()


def _build(config: dict[str, Any]) -> BlobStore:
    if config.get("backend", "local") == "local":
        return LocalBlobStore(config["local_root"], name=config.get("name") or "local")
    return build_store(config)
