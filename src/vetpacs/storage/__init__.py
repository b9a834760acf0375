"""Blob storage behind one small interface: local files, S3, and a replicating store."""

from vetpacs.storage.base import BlobInfo, BlobStore, new_blob_key, validate_key

__all__ = ["BlobInfo", "BlobStore", "new_blob_key", "validate_key"]
