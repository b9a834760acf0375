"""Archive use cases: ingest (in ingest.py, re-exported here), compression, the orphan sweep, verify."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vetpacs.apps.archive import blobs
from vetpacs.apps.archive.generation import bump_generation
from vetpacs.apps.archive.ingest import (
    IngestResult,
    discard,
    file_sha256,
    ingest_batch,
    ingest_file,
    put_dataset,
)
from vetpacs.apps.archive.models import Blob, Instance, PendingBlob
from vetpacs.dicom import codecs
from vetpacs.dicom.parse import read_dataset
from vetpacs.storage.base import new_blob_key

__all__ = ["IngestResult", "bump_generation", "file_sha256", "ingest_batch", "ingest_file"]


log = logging.getLogger(__name__)


def compress(instance_id: int) -> bool:
    """Re-encode an uncompressed stored instance as JPEG-LS Lossless. Idempotent."""
    inst = Instance.objects.select_related("blob").filter(pk=instance_id).first()
    if inst is None or not codecs.is_uncompressed(inst.transfer_syntax_uid):
        return False
    store = blobs.store()
    old_blob = inst.blob
    with store.open(old_blob.key) as f:
        ds = read_dataset(f, defer=False)
    if not codecs.can_compress(ds):
        return False
    codecs.compress_jpegls(ds)
    key = new_blob_key()
    PendingBlob.objects.create(key=key)
    try:
        info = put_dataset(store, key, ds)
        with transaction.atomic():
            current = Instance.objects.select_for_update().get(pk=instance_id)
            if current.blob_id != old_blob.id:
                raise RuntimeError("instance changed while compressing")
            blob = Blob.objects.create(
                key=key,
                size=info.size,
                sha256=info.sha256,
                transfer_syntax_uid=str(codecs.STORAGE_SYNTAX),
                locations=old_blob.locations,
            )
            current.blob = blob
            current.transfer_syntax_uid = str(codecs.STORAGE_SYNTAX)
            current.save(update_fields=["blob", "transfer_syntax_uid"])
            bump_generation()
            old_key = old_blob.key
            old_blob.delete()
            PendingBlob.objects.filter(key=key).delete()
            # The old bytes go only once the new index is committed.
            PendingBlob.objects.create(key=old_key)
            transaction.on_commit(lambda: _delete_blob(old_key))
    except RuntimeError:
        discard(store, [key])
        return False
    except BaseException:
        discard(store, [key])
        raise
    return True


def _delete_blob(key: str) -> None:
    blobs.store().delete(key)
    PendingBlob.objects.filter(key=key).delete()


def sweep_orphans(*, older_than_seconds: int | None = None) -> int:
    """Delete blobs a crash left unindexed. Returns how many were removed."""
    grace = settings.VETPACS_ORPHAN_GRACE_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - dt.timedelta(seconds=grace)
    store = blobs.store()
    removed = 0
    for pending in PendingBlob.objects.filter(created_at__lte=cutoff):
        if not Blob.objects.filter(key=pending.key).exists():
            store.delete(pending.key)
            removed += 1
        pending.delete()
    temporary = getattr(store, "temporary_files", None)
    leftovers = list(temporary()) if temporary else []
    # Request bodies and parts spooled by STOW-RS or uploads that a crash interrupted.
    leftovers += [p for p in Path(settings.VETPACS_INCOMING_DIR).glob("*") if p.is_file()]
    if leftovers:
        for tmp in leftovers:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime <= cutoff.timestamp():
                    tmp.unlink()
                    removed += 1
    return removed


@dataclass(frozen=True)
class VerifyProblem:
    key: str
    problem: str


def verify_blobs() -> tuple[int, list[VerifyProblem]]:
    """Re-hash every indexed blob; report what is missing or does not match its SHA-256."""
    store = blobs.store()
    checked = 0
    problems: list[VerifyProblem] = []
    verify_all = getattr(store, "verify_each", None)
    for blob in Blob.objects.order_by("id").iterator(chunk_size=500):
        checked += 1
        if verify_all is not None:
            bad = [loc for loc, ok in verify_all(blob.key, blob.sha256).items() if not ok]
            problems += [VerifyProblem(blob.key, f"copy on {loc} missing or corrupt") for loc in bad]
            if not bad:
                Blob.objects.filter(pk=blob.pk).update(verified_at=timezone.now())
            continue
        if not store.exists(blob.key):
            problems.append(VerifyProblem(blob.key, "missing"))
        elif not store.verify(blob.key, blob.sha256):
            problems.append(VerifyProblem(blob.key, "SHA-256 mismatch"))
        else:
            Blob.objects.filter(pk=blob.pk).update(verified_at=timezone.now())
    return checked, problems
