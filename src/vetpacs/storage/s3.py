"""S3 blob store (boto3): streamed puts with the SHA-256 in the object's metadata, Range GETs, re-hash."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.storage.base import CHUNK_SIZE, BlobInfo, validate_key

log = logging.getLogger(__name__)

# boto3's own default: up to this size one PUT, above it a multipart upload in parts of this size.
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
# S3 refuses parts smaller than 5 MiB (except the last one).
MIN_PART_SIZE_BYTES = 5 * 1024 * 1024
MAX_CONCURRENCY = 4
# Big blobs are uploaded under this prefix, then copied to their key in one server-side step.
TMP_PREFIX = "tmp/"
# A crash between upload and copy leaves a temporary object; a bucket we create expires them.
TMP_EXPIRY_DAYS = 1
SHA256_METADATA = "sha256"
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})
_BOTO_ERRORS = (ClientError, BotoCoreError, Boto3Error)

T = TypeVar("T")


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Read n bytes or until the end, whatever short reads the stream gives."""
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(min(remaining, CHUNK_SIZE))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


class _HashingReader:
    """Feeds upload_fileobj from already-read bytes then the rest of the stream, hashing as it goes."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = io.BytesIO(head)
        self._stream = stream
        self.sha256 = hashlib.sha256(head)
        self.size = len(head)

    def seekable(self) -> bool:
        # Not seekable, so the transfer manager reads each byte once, in order (the hash depends on it).
        return False

    def read(self, n: int = -1) -> bytes:
        data = self._head.read(n)
        if n < 0 or len(data) < n:
            # Fill the request: a short read would become a part under S3's 5 MiB minimum.
            rest = self._stream.read() if n < 0 else _read_up_to(self._stream, n - len(data))
            if rest:
                self.sha256.update(rest)
                self.size += len(rest)
                data += rest
        return data


class _S3Reader(io.RawIOBase):
    """A seekable read-only view of one object: streams a GET, and seeks by opening a Range GET."""

    def __init__(self, store: S3BlobStore, key: str, size: int, body: Any, position: int = 0) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._body: Any = body  # a GET's body from `position` on, or None
        self._pos = position
        self._body_pos = position
        # As a file has, so readers that name their source (pydicom does) can say which blob.
        self.name = f"s3://{store.bucket}/{store.prefix}{key}"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        if self._body is None or self._body_pos != self._pos:
            self._close_body()
            self._body = self._store._range_body(self._key, self._pos)
            self._body_pos = self._pos
        data = self._store._call(f"read blob {self._key}", self._body.read, len(buffer))
        if not data:
            raise VetpacsError(
                Errors.STORAGE_FAILED,
                f"blob {self._key} on {self._store.name} ended at byte {self._pos} of {self._size}",
            )
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self._body_pos += n
        return n

    def _close_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()


class S3BlobStore:
    """Blobs as objects "<prefix><key>" in one bucket, each with its SHA-256 as metadata."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        name: str = "s3",
        prefix: str = "",
        multipart_threshold_bytes: int = MULTIPART_THRESHOLD_BYTES,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.prefix = prefix
        self.multipart_threshold = max(MIN_PART_SIZE_BYTES, multipart_threshold_bytes)
        self._transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
            max_concurrency=MAX_CONCURRENCY,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> S3BlobStore:
        endpoint = config.get("s3_endpoint_url") or None
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=config.get("s3_region") or "us-east-1",
            aws_access_key_id=config.get("s3_access_key") or None,
            aws_secret_access_key=config.get("s3_secret_key") or None,
            config=Config(
                signature_version="s3v4",
                # MinIO, Ceph RGW and most on-premises stores answer on path-style URLs only.
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=2 * MAX_CONCURRENCY,
            ),
        )
        store = cls(
            client,
            config.get("s3_bucket") or "vetpacs",
            name=config.get("name") or "s3",
            prefix=config.get("s3_prefix") or "",
            multipart_threshold_bytes=int(
                config.get("s3_multipart_threshold_bytes") or MULTIPART_THRESHOLD_BYTES
            ),
        )
        store.ensure_bucket(region=config.get("s3_region") or "us-east-1")
        return store

    # -- helpers ---------------------------------------------------------------------------------

    def _object(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one S3 call; a missing object is BLOB_MISSING, anything else STORAGE_FAILED."""
        try:
            return fn(*args, **kwargs)
        except _BOTO_ERRORS as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise VetpacsError(Errors.BLOB_MISSING, f"{doing}: not found on {self.name}") from None
            raise VetpacsError(Errors.STORAGE_FAILED, f"{doing} on {self.name} failed: {exc}") from exc

    def _get(self, key: str, byte_range: str = "") -> Any:
        """One GetObject, of the whole object or of `byte_range` ("bytes=<first>-[<last>]", the last byte
        included, RFC 9110 14.1.2); None where the range starts past the end (S3's InvalidRange), where
        a file read gives nothing."""
        extra = {"Range": byte_range} if byte_range else {}
        try:
            return self._call(
                f"read blob {key}", self.client.get_object, Bucket=self.bucket, Key=self._object(key), **extra
            )
        except VetpacsError as exc:
            if byte_range and _error_code(exc.__cause__ or exc) == "InvalidRange":
                return None
            raise

    def _size(self, key: str) -> int:
        head = self._call(
            f"read blob {key}", self.client.head_object, Bucket=self.bucket, Key=self._object(key)
        )
        return int(head["ContentLength"])

    def _range_body(self, key: str, start: int) -> Any:
        resp = self._get(key, f"bytes={start}-")
        if resp is None:
            raise VetpacsError(Errors.STORAGE_FAILED, f"blob {key} on {self.name} ended before byte {start}")
        return resp["Body"]

    def ensure_bucket(self, region: str = "us-east-1") -> None:
        """Create the bucket if it does not exist, with a rule that expires abandoned temporaries."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except _BOTO_ERRORS as exc:
            if _error_code(exc) not in _NO_BUCKET_CODES:
                raise VetpacsError(
                    Errors.STORAGE_FAILED, f"bucket {self.bucket} on {self.name} is not reachable: {exc}"
                ) from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region != "us-east-1":
            # S3: us-east-1 is the default and must not be named as a location constraint.
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except _BOTO_ERRORS as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise VetpacsError(
                    Errors.STORAGE_FAILED, f"bucket {self.bucket} on {self.name} could not be created: {exc}"
                ) from exc
            return
        rule = {
            "ID": "vetpacs-abandoned-temporaries",
            "Filter": {"Prefix": self.prefix + TMP_PREFIX},
            "Status": "Enabled",
            "Expiration": {"Days": TMP_EXPIRY_DAYS},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": TMP_EXPIRY_DAYS},
        }
        try:
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]}
            )
        except _BOTO_ERRORS as exc:
            # Some S3-compatible stores have no lifecycle rules: storing still works, sweeping is manual.
            log.warning("bucket %s: lifecycle rule for temporaries not set: %s", self.bucket, exc)

    # -- the BlobStore interface -----------------------------------------------------------------

    def put(self, key: str, stream: BinaryIO) -> BlobInfo:
        target = self._object(key)
        head = _read_up_to(stream, self.multipart_threshold + 1)
        if len(head) <= self.multipart_threshold:
            # One PUT is atomic: the object appears whole with its hash, or not at all.
            sha256 = hashlib.sha256(head).hexdigest()
            self._call(
                f"store blob {key}",
                self.client.put_object,
                Bucket=self.bucket,
                Key=target,
                Body=head,
                Metadata={SHA256_METADATA: sha256},
            )
            return BlobInfo(key=key, size=len(head), sha256=sha256)
        # Big blob: the hash is known only at the end of the stream, but metadata is fixed when an
        # upload starts. Upload under a temporary name (a failure aborts the multipart upload, so
        # no part is left), then copy server-side to the key with the hash: the key appears whole.
        reader = _HashingReader(head, stream)
        temporary = f"{self.prefix}{TMP_PREFIX}{key.replace('/', '-')}.{uuid.uuid4().hex}"
        try:
            self._call(
                f"upload blob {key}",
                self.client.upload_fileobj,
                reader,
                self.bucket,
                temporary,
                Config=self._transfer,
            )
            sha256 = reader.sha256.hexdigest()
            self._call(
                f"store blob {key}",
                self.client.copy,
                {"Bucket": self.bucket, "Key": temporary},
                self.bucket,
                target,
                ExtraArgs={"Metadata": {SHA256_METADATA: sha256}, "MetadataDirective": "REPLACE"},
                Config=self._transfer,
            )
        finally:
            with contextlib.suppress(*_BOTO_ERRORS):
                self.client.delete_object(Bucket=self.bucket, Key=temporary)
        return BlobInfo(key=key, size=reader.size, sha256=sha256)

    def open(self, key: str, start: int = 0) -> BinaryIO:
        """One GET: of the whole object, or from `start` on (a Range GET, so that a reader resuming
        past a first piece does not fetch the object twice)."""
        if start <= 0:
            resp = self._get(key)
            raw = _S3Reader(self, key, int(resp["ContentLength"]), resp["Body"])
        elif (resp := self._get(key, f"bytes={start}-")) is None:
            # `start` is at or past the end: a stream there reads nothing, as a file's does.
            raw = _S3Reader(self, key, self._size(key), None, position=start)
        else:
            size = int(resp["ContentRange"].rpartition("/")[2])  # "bytes <first>-<last>/<size>"
            raw = _S3Reader(self, key, size, resp["Body"], position=start)
        return io.BufferedReader(raw, buffer_size=CHUNK_SIZE)

    def open_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            self._size(key)  # BLOB_MISSING if there is no such blob
            return b""
        resp = self._get(key, f"bytes={start}-{end - 1}")
        if resp is None:
            return b""  # the range starts past the end, as a file read there gives nothing
        body = resp["Body"]
        with contextlib.closing(body):
            return bytes(self._call(f"read blob {key}", body.read))

    def delete(self, key: str) -> None:
        try:
            self._call(
                f"delete blob {key}", self.client.delete_object, Bucket=self.bucket, Key=self._object(key)
            )
        except VetpacsError as exc:
            if exc.error is not Errors.BLOB_MISSING:
                raise

    def exists(self, key: str) -> bool:
        try:
            self._call(
                f"look up blob {key}", self.client.head_object, Bucket=self.bucket, Key=self._object(key)
            )
        except VetpacsError as exc:
            if exc.error is Errors.BLOB_MISSING:
                return False
            raise
        return True

    def verify(self, key: str, sha256: str) -> bool:
        """Re-hash the stored bytes (the metadata only says what was meant to be stored)."""
        h = hashlib.sha256()
        try:
            with self.open(key) as f:
                while chunk := f.read(CHUNK_SIZE):
                    h.update(chunk)
        except VetpacsError as exc:
            if exc.error is Errors.BLOB_MISSING:
                return False
            raise
        return h.hexdigest() == sha256

    def keys(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    try:
                        validate_key(key)
                    except VetpacsError:
                        continue  # temporaries and foreign objects are not blobs
                    yield key
        except _BOTO_ERRORS as exc:
            raise VetpacsError(Errors.STORAGE_FAILED, f"listing {self.name} failed: {exc}") from exc

    def temporary_objects(self) -> list[str]:
        """Temporaries and unfinished multipart uploads left by interrupted puts (normally none)."""
        names = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + TMP_PREFIX
            ):
                names += [obj["Key"] for obj in page.get("Contents", [])]
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        except _BOTO_ERRORS as exc:
            raise VetpacsError(Errors.STORAGE_FAILED, f"listing {self.name} failed: {exc}") from exc
        names += [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
        return names
