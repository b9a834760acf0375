"""The platform's configured blob store (one per process)."""

from __future__ import annotations

import functools

from django.conf import settings

from vetpacs.storage.base import BlobStore
from vetpacs.storage.factory import build_store


@functools.cache
def store() -> BlobStore:
    return build_store(settings.VETPACS_STORAGE)


def reset() -> None:
    store.cache_clear()
