"""Blob store backends for tests: a real S3 server (moto) on loopback, and hooks to damage copies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from vetpacs.storage.base import BlobStore
from vetpacs.storage.local import LocalBlobStore
from vetpacs.storage.replicating import ReplicatingBlobStore
from vetpacs.storage.s3 import S3BlobStore

BACKENDS = ["local", "s3", "replicated-local-local", "replicated-local-s3"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 server speaking HTTP on a free loopback port, for the whole test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_config(endpoint: str, **extra: object) -> dict[str, object]:
    """A config for a fresh bucket of its own, as VETPACS_STORAGE would give it."""
    return {
        "backend": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": f"vetpacs-test-{uuid.uuid4().hex[:12]}",
        "s3_region": "us-east-1",
        "s3_access_key": "testing",
        "s3_secret_key": "testing",
        **extra,
    }


def raw_client(endpoint: str) -> object:
    """A plain S3 client, to look at and damage the bucket behind the store's back."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@dataclass
class Backend:
    """A store under test, with ways to reach under it like a failing disk or a careless operator."""

    store: BlobStore
    corrupt: Callable[[str], None]
    leftovers: Callable[[], list[str]]
    copies: list[BlobStore] = field(default_factory=list)


def local_backend(root: Path, name: str = "local") -> Backend:
    store = LocalBlobStore(root, name=name)

    def corrupt(key: str) -> None:
        path = root / key
        data = bytearray(path.read_bytes() or b"\0")
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    def leftovers() -> list[str]:
        return [str(p) for p in store.temporary_files()]

    return Backend(store, corrupt, leftovers, [store])


def s3_backend(endpoint: str, name: str = "s3") -> Backend:
    store = S3BlobStore.from_config(s3_config(endpoint, name=name))
    client = raw_client(endpoint)

    def corrupt(key: str) -> None:
        # Bit rot keeps the metadata: only a re-hash of the bytes can notice.
        head = client.head_object(Bucket=store.bucket, Key=key)  # type: ignore[attr-defined]
        client.put_object(  # type: ignore[attr-defined]
            Bucket=store.bucket, Key=key, Body=b"rotten bytes", Metadata=head["Metadata"]
        )

    return Backend(store, corrupt, store.temporary_objects, [store])


def replicated_backend(parts: list[Backend]) -> Backend:
    store = ReplicatingBlobStore([p.store for p in parts])

    def corrupt(key: str) -> None:
        # The last copy: verify must look past the first copy, the one reads come from.
        parts[-1].corrupt(key)

    def leftovers() -> list[str]:
        return [name for p in parts for name in p.leftovers()]

    return Backend(store, corrupt, leftovers, [p.store for p in parts])


def make_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    if kind == "local":
        return local_backend(tmp_path / "local")
    if kind == "s3":
        return s3_backend(request.getfixturevalue("s3_endpoint"))
    if kind == "replicated-local-local":
        return replicated_backend(
            [local_backend(tmp_path / "a", "local-a"), local_backend(tmp_path / "b", "local-b")]
        )
    if kind == "replicated-local-s3":
        return replicated_backend(
            [local_backend(tmp_path / "a", "local-a"), s3_backend(request.getfixturevalue("s3_endpoint"))]
        )
    raise ValueError(kind)
