"""The S3 store against a real S3 server on loopback: metadata, bucket set-up, prefixes, failures."""

from __future__ import annotations

import hashlib
import io
import os
import socket

import boto3
import pydicom
import pytest
from botocore.config import Config

from tests.contract.backends import raw_client, s3_config
from vetpacs.core.errors import VetpacsError
from vetpacs.storage.base import new_blob_key
from vetpacs.storage.factory import build_store
from vetpacs.storage.s3 import S3BlobStore

MIB = 1024 * 1024


@pytest.mark.requirement("R-7.3.4.1b")
@pytest.mark.parametrize("size", [10_000, 12 * MIB], ids=["single-put", "multipart"])
def test_the_sha256_is_kept_as_object_metadata(s3_endpoint: str, size: int):
    store = build_store(s3_config(s3_endpoint))
    assert isinstance(store, S3BlobStore)
    data = os.urandom(size)
    key = new_blob_key()
    info = store.put(key, io.BytesIO(data))
    head = raw_client(s3_endpoint).head_object(Bucket=store.bucket, Key=key)
    assert head["Metadata"]["sha256"] == info.sha256 == hashlib.sha256(data).hexdigest()
    assert head["ContentLength"] == size
    assert store.temporary_objects() == []


def test_a_missing_bucket_is_created_with_an_expiry_for_abandoned_temporaries(s3_endpoint: str):
    config = s3_config(s3_endpoint)
    client = raw_client(s3_endpoint)
    with pytest.raises(client.exceptions.ClientError):
        client.head_bucket(Bucket=config["s3_bucket"])
    S3BlobStore.from_config(config)
    client.head_bucket(Bucket=config["s3_bucket"])
    rules = client.get_bucket_lifecycle_configuration(Bucket=config["s3_bucket"])["Rules"]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [("tmp/", 1)]


def test_an_existing_bucket_and_its_objects_are_left_as_they_are(s3_endpoint: str):
    config = s3_config(s3_endpoint)
    client = raw_client(s3_endpoint)
    client.create_bucket(Bucket=config["s3_bucket"])
    key = new_blob_key()
    client.put_object(Bucket=config["s3_bucket"], Key=key, Body=b"already here")
    client.put_object(Bucket=config["s3_bucket"], Key="README.txt", Body=b"not a blob")
    store = S3BlobStore.from_config(config)
    assert list(store.keys()) == [key]
    assert store.open_range(key, 0, 7) == b"already"


def test_a_prefix_keeps_two_stores_apart_in_one_bucket(s3_endpoint: str):
    config = s3_config(s3_endpoint)
    clinic_a = S3BlobStore.from_config({**config, "s3_prefix": "a/"})
    clinic_b = S3BlobStore.from_config({**config, "s3_prefix": "b/"})
    key = new_blob_key()
    clinic_a.put(key, io.BytesIO(b"bytes of a"))
    assert list(clinic_a.keys()) == [key]
    assert list(clinic_b.keys()) == []
    assert not clinic_b.exists(key)
    assert raw_client(s3_endpoint).get_object(Bucket=config["s3_bucket"], Key=f"a/{key}")["Body"].read() == (
        b"bytes of a"
    )


def test_a_big_blob_reads_in_any_order_through_range_gets(s3_endpoint: str):
    store = S3BlobStore.from_config(s3_config(s3_endpoint))
    data = os.urandom(12 * MIB)
    key = new_blob_key()
    store.put(key, io.BytesIO(data))
    with store.open(key) as f:
        f.seek(10 * MIB)
        assert f.read(1000) == data[10 * MIB : 10 * MIB + 1000]
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:]
        f.seek(3)
        assert f.read(5 * MIB) == data[3 : 3 + 5 * MIB]
    assert store.open_range(key, 9 * MIB, 9 * MIB + 16) == data[9 * MIB : 9 * MIB + 16]


def test_an_unreachable_s3_server_is_storage_failed_naming_the_store():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}, connect_timeout=2),
    )
    store = S3BlobStore(client, "vetpacs", name="s3-offsite")
    key = new_blob_key()
    for call in (
        lambda: store.put(key, io.BytesIO(b"bytes")),
        lambda: store.open(key),
        lambda: store.exists(key),
        lambda: list(store.keys()),
    ):
        with pytest.raises(VetpacsError) as err:
            call()
        assert err.value.code == "storage_failed"
        assert "s3-offsite" in err.value.detail


def test_a_large_instance_on_s3_is_read_in_three_bounded_gets_that_do_not_overlap(
    ingest, clinic_client, settings, monkeypatch, s3_endpoint
):
    """A streamed answer on S3: its header from the object's first bytes, its first piece, then the rest
    from where that piece stopped; no GET of the whole object that is cut off at the first seek."""
    from tests.dicomweb.test_wado_range import _body, _get, _multiframe
    from vetpacs.apps.archive import blobs
    from vetpacs.dicomweb import ranges, wado

    settings.VETPACS_STORAGE = s3_config(s3_endpoint)
    blobs.reset()
    monkeypatch.setattr(wado, "WHOLE_BODY_MAX", 4096)
    monkeypatch.setattr(ranges, "STREAM_CHUNK", 16 * 1024)
    ds = _multiframe(frames=6, rows=128, columns=96)
    ingest(ds)
    gets: list[str] = []
    blobs.store().client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: gets.append(params["headers"].get("Range", "whole"))
    )
    full = _body(_get(clinic_client, ds))
    assert pydicom.dcmread(io.BytesIO(full)).PixelData == ds.PixelData
    header, first, rest = gets
    assert header == f"bytes=0-{wado.HEADER_GUESS - 1}"
    begin, last = map(int, first.removeprefix("bytes=").split("-"))
    assert last - begin + 1 == ranges.STREAM_CHUNK and rest == f"bytes={last + 1}-"
    gets.clear()
    assert _body(_get(clinic_client, ds, range="bytes=20000-60000")) == full[20_000:60_001]
    assert len(gets) == 3 and "whole" not in gets, gets
