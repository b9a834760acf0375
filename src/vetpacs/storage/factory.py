"""Build the configured blob store from a plain dict (see VETPACS_STORAGE in the settings)."""

from __future__ import annotations

from typing import Any

from vetpacs.storage.base import BlobStore
from vetpacs.storage.local import LocalBlobStore


def build_store(config: dict[str, Any]) -> BlobStore:
    backend = config.get("backend", "local")
    if backend == "local":
        return LocalBlobStore(config["local_root"])
    if backend == "s3":
        from vetpacs.storage.s3 import S3BlobStore  # boto3 loads only when S3 is used

        return S3BlobStore.from_config(config)
    if backend == "replicated":
        from vetpacs.storage.replicating import ReplicatingBlobStore

        return ReplicatingBlobStore.from_config(config)
    raise ValueError(f"unknown storage backend {backend!r} (local, s3, replicated)")
