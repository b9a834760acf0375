"""A batch's blobs are written side by side: one failed write costs only its own file, a crash costs none."""

from __future__ import annotations

import functools
import threading

import pytest
from pydicom.uid import generate_uid

from tests.builders import dicom as build
from vetpacs.apps.archive import blobs
from vetpacs.apps.archive.models import Blob, Instance, PendingBlob
from vetpacs.apps.archive.services import ingest_batch
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.storage.local import LocalBlobStore


class _FailingStore(LocalBlobStore):
    """The real local store, with one write that fails the way the disk would make it fail."""

    def __init__(self, root, *, fail_on: int, error: BaseException) -> None:
        super().__init__(root)
        self.fail_on, self.error = fail_on, error
        self.puts = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def put(self, key, stream):
        with self._lock:
            self.puts += 1
            mine = self.puts
            self.threads.add(threading.current_thread().name)
        if mine == self.fail_on:
            raise self.error
        return super().put(key, stream)


def _series(tmp_path, n: int) -> list:
    study, series = generate_uid(), generate_uid()
    return [build.write(build.image(study_uid=study, series_uid=series), tmp_path) for _ in range(n)]


def _use(monkeypatch, store) -> None:
    # Cached like the real one, so the suite's reset after the test still works.
    monkeypatch.setattr(blobs, "store", functools.cache(lambda: store))


@pytest.mark.requirement("R-6.2.1a")
def test_a_write_refused_by_the_disk_fails_only_its_own_file(clinic, tmp_path, monkeypatch):
    store = _FailingStore(
        tmp_path / "store",
        fail_on=4,
        error=VetpacsError(Errors.STORAGE_FAILED, "writing to local failed: [Errno 28] No space left"),
    )
    _use(monkeypatch, store)
    outcomes = ingest_batch(_series(tmp_path, 10), organisation_id=clinic.id, actor="test")

    refused = [o for o in outcomes if isinstance(o, VetpacsError)]
    assert len(refused) == 1 and "No space left" in refused[0].detail
    assert Instance.objects.count() == 9
    # Every indexed instance has its blob; the refused one left nothing behind.
    assert sorted(store.keys()) == sorted(Blob.objects.values_list("key", flat=True))
    assert not PendingBlob.objects.exists()
    assert len(store.threads) > 1  # the batch was written by several threads at once


def test_a_write_that_dies_leaves_no_blob_and_no_index_row(clinic, tmp_path, monkeypatch):
    store = _FailingStore(tmp_path / "store", fail_on=3, error=MemoryError("out of memory while copying"))
    _use(monkeypatch, store)
    with pytest.raises(MemoryError):
        ingest_batch(_series(tmp_path, 8), organisation_id=clinic.id, actor="test")

    assert not Instance.objects.exists() and not Blob.objects.exists()
    assert list(store.keys()) == [] and list(store.temporary_files()) == []
    assert not PendingBlob.objects.exists()

    # The same upload, repeated once the fault is gone, is stored whole.
    _use(monkeypatch, LocalBlobStore(tmp_path / "store"))
    again = ingest_batch(_series(tmp_path, 8), organisation_id=clinic.id, actor="test")
    assert all(not isinstance(o, VetpacsError) for o in again)
    assert Instance.objects.count() == 8
