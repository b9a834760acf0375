"""The master key (a 0600 file under the data directory) and per-clinic data keys."""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import transaction

from vetpacs.apps.identity.models import DataKey
from vetpacs.core import crypto


@functools.cache
def master_key() -> bytes:
    return bytes(settings.VETPACS_MASTER_KEY)


def blind_index_key(organisation_id: int) -> bytes:
    return crypto.derive_key(master_key(), f"blind-index:{organisation_id}")


def _wrap_aad(organisation_id: int) -> bytes:
    return f"datakey:{organisation_id}".encode()


def current_data_key(organisation_id: int) -> tuple[DataKey, bytes]:
    """The clinic's live data key (created on first use), unwrapped."""
    # The common case reads without a lock; only creating the first key needs one.
    row = (
        DataKey.objects.filter(organisation_id=organisation_id, destroyed_at__isnull=True)
        .order_by("id")
        .first()
    )
    if row is not None:
        return row, unwrap(row)
    with transaction.atomic():
        row = (
            DataKey.objects.select_for_update()
            .filter(organisation_id=organisation_id, destroyed_at__isnull=True)
            .order_by("id")
            .first()
        )
        if row is None:
            key = crypto.new_data_key()
            row = DataKey.objects.create(
                organisation_id=organisation_id,
                wrapped_key=crypto.seal(master_key(), key, _wrap_aad(organisation_id)),
            )
            _cache[bytes(row.wrapped_key)] = key
            return row, key
    return row, unwrap(row)


# Unwrapped keys by their wrapped bytes: a row id can come back (a restored or rolled-back
# database), the ciphertext of a different key cannot.
_cache: dict[bytes, bytes] = {}


def unwrap(row: DataKey) -> bytes:
    if row.destroyed_at is not None or row.wrapped_key is None:
        raise PermissionError(f"data key {row.id} has been destroyed")
    wrapped = bytes(row.wrapped_key)
    key = _cache.get(wrapped)
    if key is None:
        key = crypto.open_sealed(master_key(), wrapped, _wrap_aad(row.organisation_id))
        _cache[wrapped] = key
    return key


def forget(wrapped: bytes) -> None:
    """Drop an unwrapped key from this process (after its row is destroyed)."""
    _cache.pop(wrapped, None)
