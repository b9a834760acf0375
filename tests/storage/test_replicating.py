"""The replicating store: lost and corrupt copies survived, named and repaired; puts all or nothing."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.contract.backends import (
    Backend,
    local_backend,
    raw_client,
    replicated_backend,
    s3_backend,
    s3_config,
)
from vetpacs.core.errors import VetpacsError
from vetpacs.storage.base import BlobInfo, new_blob_key
from vetpacs.storage.factory import build_store
from vetpacs.storage.local import LocalBlobStore
from vetpacs.storage.replicating import ReplicatingBlobStore


class BitFlippingDisk(LocalBlobStore):
    """A disk that silently changes one byte of what it is given (the fault replication must catch)."""

    def put(self, key: str, stream: BinaryIO) -> BlobInfo:
        data = bytearray(stream.read())
        data[0] ^= 0x01
        return super().put(key, io.BytesIO(bytes(data)))


@pytest.fixture
def two_disks(tmp_path: Path) -> Backend:
    return replicated_backend(
        [local_backend(tmp_path / "a", "local-a"), local_backend(tmp_path / "b", "local-b")]
    )


@pytest.fixture(params=["local+local", "local+s3"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    second = (
        local_backend(tmp_path / "b", "local-b")
        if request.param == "local+local"
        else s3_backend(request.getfixturevalue("s3_endpoint"), "s3")
    )
    return replicated_backend([local_backend(tmp_path / "a", "local-a"), second])


def test_the_store_is_named_after_its_locations(two_disks: Backend):
    store = two_disks.store
    assert store.name == "replicated(local-a,local-b)"
    assert store.location_names == ["local-a", "local-b"]  # type: ignore[attr-defined]


@pytest.mark.requirement("R-6.2.1a")
def test_a_lost_first_copy_is_read_from_the_next_and_repaired(two_disks: Backend, tmp_path: Path):
    store: ReplicatingBlobStore = two_disks.store  # type: ignore[assignment]
    data = os.urandom(100_000)
    key = new_blob_key()
    info = store.put(key, io.BytesIO(data))
    (tmp_path / "a" / key).unlink()

    with store.open(key) as f:
        assert f.read() == data
    assert store.open_range(key, 10, 20) == data[10:20]
    assert store.exists(key)
    assert store.verify_each(key, info.sha256) == {"local-a": False, "local-b": True}
    assert not store.verify(key, info.sha256)

    assert store.repair(key, info.sha256) == ["local-a"]
    assert (tmp_path / "a" / key).read_bytes() == data
    assert store.verify_each(key, info.sha256) == {"local-a": True, "local-b": True}
    assert store.repair(key, info.sha256) == []


@pytest.mark.requirement("R-7.3.4.1b")
def test_a_corrupt_copy_is_named_by_verify_each_and_repaired(replicas: Backend):
    store: ReplicatingBlobStore = replicas.store  # type: ignore[assignment]
    data = os.urandom(50_000)
    key = new_blob_key()
    info = store.put(key, io.BytesIO(data))
    replicas.corrupt(key)  # the second copy
    second = store.location_names[1]
    assert store.verify_each(key, info.sha256) == {"local-a": True, second: False}
    assert store.repair(key, info.sha256) == [second]
    assert all(store.verify_each(key, info.sha256).values())
    with replicas.copies[1].open(key) as f:
        assert f.read() == data


def test_a_blob_lost_everywhere_is_blob_missing_and_cannot_be_repaired(two_disks: Backend, tmp_path: Path):
    store: ReplicatingBlobStore = two_disks.store  # type: ignore[assignment]
    key = new_blob_key()
    info = store.put(key, io.BytesIO(b"bytes"))
    for root in ("a", "b"):
        (tmp_path / root / key).unlink()
    with pytest.raises(VetpacsError) as err:
        store.open(key)
    assert err.value.code == "blob_missing"
    assert "local-a" in err.value.detail and "local-b" in err.value.detail
    with pytest.raises(VetpacsError) as err:
        store.repair(key, info.sha256)
    assert err.value.code == "blob_corrupt"


@pytest.mark.requirement("R-6.2.1a")
def test_a_disk_failing_during_put_leaves_nothing_anywhere(tmp_path: Path):
    first, second = local_backend(tmp_path / "a", "local-a"), local_backend(tmp_path / "b", "local-b")
    backend = replicated_backend([first, second])
    # The second disk goes away and something else takes its mount point: no directory can be made.
    shutil.rmtree(tmp_path / "b")
    (tmp_path / "b").write_bytes(b"not a directory")
    key = new_blob_key()
    with pytest.raises(VetpacsError) as err:
        backend.store.put(key, io.BytesIO(os.urandom(10_000)))
    assert err.value.code == "storage_failed"
    assert "local-b" in err.value.detail
    assert not first.store.exists(key)
    assert list(first.store.keys()) == []
    assert backend.leftovers() == []


@pytest.mark.requirement("R-6.2.1a")
def test_an_s3_replica_failing_during_put_leaves_nothing_anywhere(tmp_path: Path, s3_endpoint: str):
    first, second = local_backend(tmp_path / "a", "local-a"), s3_backend(s3_endpoint, "s3-offsite")
    backend = replicated_backend([first, second])
    raw_client(s3_endpoint).delete_bucket(Bucket=second.store.bucket)  # type: ignore[attr-defined]
    key = new_blob_key()
    with pytest.raises(VetpacsError) as err:
        backend.store.put(key, io.BytesIO(os.urandom(10_000)))
    assert err.value.code == "storage_failed"
    assert "s3-offsite" in err.value.detail
    assert not first.store.exists(key)
    assert first.leftovers() == []


@pytest.mark.requirement("R-7.3.4.1b")
def test_copies_that_do_not_hash_alike_are_refused_and_removed(tmp_path: Path):
    good = LocalBlobStore(tmp_path / "a", name="local-a")
    flipping = BitFlippingDisk(tmp_path / "b", name="local-b")
    store = ReplicatingBlobStore([good, flipping])
    key = new_blob_key()
    with pytest.raises(VetpacsError) as err:
        store.put(key, io.BytesIO(b"radiograph bytes"))
    assert err.value.code == "storage_failed"
    assert "local-b" in err.value.detail and "SHA-256" in err.value.detail
    assert not good.exists(key) and not flipping.exists(key)


def test_the_flat_settings_keys_describe_local_replicas_and_an_s3_copy(tmp_path: Path, s3_endpoint: str):
    config = {
        **s3_config(s3_endpoint),
        "backend": "replicated",
        "local_root": str(tmp_path / "main"),
        "replica_roots": [str(tmp_path / "usb"), f"nas={tmp_path / 'nas'}"],
        "replica_s3": True,
    }
    store = build_store(config)
    assert isinstance(store, ReplicatingBlobStore)
    assert store.location_names == ["local", "local-2", "nas", "s3"]
    key = new_blob_key()
    info = store.put(key, io.BytesIO(b"four copies"))
    assert all(store.verify_each(key, info.sha256).values())
    assert (tmp_path / "nas" / key).read_bytes() == b"four copies"


def test_a_list_of_replica_configs_names_each_location(tmp_path: Path):
    store = build_store(
        {
            "backend": "replicated",
            "replicas": [
                {"backend": "local", "local_root": str(tmp_path / "x"), "name": "room-101"},
                {"backend": "local", "local_root": str(tmp_path / "y"), "name": "room-202"},
            ],
        }
    )
    assert store.name == "replicated(room-101,room-202)"


@pytest.mark.parametrize(
    ("replicas", "problem"),
    [
        ([{"backend": "local", "local_root": "x"}], "at least two"),
        (
            [{"backend": "local", "local_root": "x"}, {"backend": "local", "local_root": "y"}],
            "distinct names",
        ),
        ([{"backend": "local", "local_root": "x", "name": "a"}, {"backend": "replicated"}], "cannot itself"),
    ],
)
def test_a_replica_configuration_that_cannot_keep_copies_apart_is_refused(tmp_path, replicas, problem):
    for r in replicas:
        if "local_root" in r:
            r["local_root"] = str(tmp_path / r["local_root"])
    with pytest.raises(ValueError, match=problem):
        build_store({"backend": "replicated", "replicas": replicas})


def test_interrupted_writes_on_every_local_replica_are_found_for_the_sweep(
    two_disks: Backend, tmp_path: Path
):
    for root in ("a", "b"):
        (tmp_path / root / "ab" / "cd").mkdir(parents=True)
        (tmp_path / root / "ab" / "cd" / ".tmp-crashed").write_bytes(b"half")
    found = sorted(p.parent.parent.parent.name for p in two_disks.store.temporary_files())  # type: ignore[attr-defined]
    assert found == ["a", "b"]
