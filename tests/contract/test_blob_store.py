"""The blob store contract: every backend stores, reads, checks and refuses alike (R-6.2.1a, R-7.3.4.1b)."""

from __future__ import annotations

import hashlib
import io
import os

import pydicom
import pytest

from tests.builders import dicom as build
from tests.contract.backends import Backend
from vetpacs.core.errors import VetpacsError
from vetpacs.storage.base import new_blob_key

MIB = 1024 * 1024
SIZES = {"empty": 0, "small": 1000, "multi-megabyte": 12 * MIB}


class FailingStream(io.RawIOBase):
    """A source that gives `good` bytes, then fails like a network cut mid-upload."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise OSError("network cut")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


class TricklingStream(io.RawIOBase):
    """A source that gives its bytes a few at a time, as a network socket does."""

    def __init__(self, data: bytes, most: int = 65_536) -> None:
        self.data = io.BytesIO(data)
        self.most = most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.data.read(min(len(buffer), self.most))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.requirement("R-6.2.1a")
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_stored_bytes_read_back_identical_with_their_size_and_sha256(backend: Backend, size: int):
    data = os.urandom(size)
    key = new_blob_key()
    info = backend.store.put(key, io.BytesIO(data))
    assert (info.key, info.size, info.sha256) == (key, size, hashlib.sha256(data).hexdigest())
    with backend.store.open(key) as f:
        assert f.read() == data
    assert backend.store.exists(key)
    assert backend.store.verify(key, info.sha256)
    for copy in backend.copies:
        assert copy.verify(key, info.sha256), f"copy on {copy.name}"


def test_a_source_giving_short_reads_is_stored_whole(backend: Backend):
    data = os.urandom(12 * MIB)
    key = new_blob_key()
    info = backend.store.put(key, TricklingStream(data))  # type: ignore[arg-type]
    assert info.size == len(data)
    assert backend.store.verify(key, hashlib.sha256(data).hexdigest())


def test_open_range_returns_the_bytes_asked_for(backend: Backend):
    data = os.urandom(100_000)
    key = new_blob_key()
    backend.store.put(key, io.BytesIO(data))
    n = len(data)
    for start, end in [(0, 10), (5, 4096), (n - 10, n), (n - 5, n + 100), (n + 10, n + 20), (7, 7)]:
        assert backend.store.open_range(key, start, end) == data[start:end], (start, end)


def test_a_blob_opened_at_an_offset_reads_from_there_and_still_seeks(backend: Backend):
    data = os.urandom(100_000)
    key = new_blob_key()
    backend.store.put(key, io.BytesIO(data))
    with backend.store.open(key, start=60_000) as f:
        assert f.tell() == 60_000
        assert f.read(10) == data[60_000:60_010]
        assert f.read() == data[60_010:]
        f.seek(5)
        assert f.read(5) == data[5:10]
    for past in (len(data), len(data) + 7):
        with backend.store.open(key, start=past) as f:
            assert f.read() == b""
    with pytest.raises(VetpacsError) as err:
        backend.store.open(new_blob_key(), start=10)
    assert err.value.code == "blob_missing"


def test_an_opened_blob_seeks_like_a_file_so_pydicom_reads_it(backend: Backend):
    ds = build.image(modality="DX", rows=64, columns=64)
    key = new_blob_key()
    backend.store.put(key, io.BytesIO(build.to_bytes(ds)))
    with backend.store.open(key) as f:
        read = pydicom.dcmread(f)
        assert read.SOPInstanceUID == ds.SOPInstanceUID
        assert (read.pixel_array == ds.pixel_array).all()
        f.seek(128)
        assert f.read(4) == b"DICM"


def test_a_deleted_blob_is_gone_and_deleting_it_again_is_no_error(backend: Backend):
    key = new_blob_key()
    backend.store.put(key, io.BytesIO(b"bytes"))
    assert backend.store.exists(key)
    backend.store.delete(key)
    assert not backend.store.exists(key)
    backend.store.delete(key)
    assert key not in set(backend.store.keys())
    with pytest.raises(VetpacsError) as err:
        backend.store.open(key)
    assert err.value.code == "blob_missing"


def test_a_missing_blob_raises_blob_missing(backend: Backend):
    key = new_blob_key()
    with pytest.raises(VetpacsError) as err:
        backend.store.open(key)
    assert err.value.code == "blob_missing"
    assert key in err.value.detail
    with pytest.raises(VetpacsError) as err:
        backend.store.open_range(key, 0, 10)
    assert err.value.code == "blob_missing"
    assert not backend.store.exists(key)
    assert not backend.store.verify(key, hashlib.sha256(b"").hexdigest())


@pytest.mark.parametrize(
    "bad_key", ["../etc/passwd", "ab/cd/../../../etc/passwd", "/etc/passwd", "", "AB/CD/x"]
)
def test_a_key_not_made_by_new_blob_key_is_refused(backend: Backend, bad_key: str):
    calls = [
        lambda: backend.store.put(bad_key, io.BytesIO(b"evil")),
        lambda: backend.store.open(bad_key),
        lambda: backend.store.open_range(bad_key, 0, 1),
        lambda: backend.store.exists(bad_key),
        lambda: backend.store.delete(bad_key),
        lambda: backend.store.verify(bad_key, "0" * 64),
    ]
    for call in calls:
        with pytest.raises(VetpacsError) as err:
            call()
        assert err.value.code == "bad_request"
        assert repr(bad_key) in err.value.detail
    assert list(backend.store.keys()) == []


@pytest.mark.requirement("R-7.3.4.1b")
def test_verify_detects_a_corrupted_copy(backend: Backend):
    key = new_blob_key()
    info = backend.store.put(key, io.BytesIO(os.urandom(50_000)))
    assert backend.store.verify(key, info.sha256)
    assert not backend.store.verify(key, hashlib.sha256(b"something else").hexdigest())
    backend.corrupt(key)
    assert not backend.store.verify(key, info.sha256)


def test_keys_lists_every_stored_blob(backend: Backend):
    stored = {new_blob_key() for _ in range(3)}
    for key in stored:
        backend.store.put(key, io.BytesIO(key.encode()))
    assert set(backend.store.keys()) == stored
    gone = stored.pop()
    backend.store.delete(gone)
    assert set(backend.store.keys()) == stored


@pytest.mark.requirement("R-7.3.4.1b")
@pytest.mark.parametrize("good_bytes", [1000, 10 * MIB], ids=["early", "after-megabytes"])
def test_a_stream_failing_mid_put_leaves_no_blob_and_no_temporary(backend: Backend, good_bytes: int):
    key = new_blob_key()
    with pytest.raises(OSError, match="network cut"):
        backend.store.put(key, io.BufferedReader(FailingStream(good_bytes)))
    assert not backend.store.exists(key)
    assert list(backend.store.keys()) == []
    assert backend.leftovers() == []
