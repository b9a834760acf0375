"""The uploader: prepared files to the platform's tus 1.0 endpoint, several at once, until confirmed.

R-6.2.1g/h, R-6.1.4, R-7.2.4. tuspy's Uploader does the protocol (metadata encoding, creation
headers, chunk arithmetic); this subclass adds what the gateway needs on top: one kept-alive HTTP
session per worker (a clinic's line may have 200 ms of round trip: a new TCP connection per chunk
would cost more than the bytes), an SHA-256 `Upload-Checksum` on every chunk, the bandwidth cap, a
stop check between chunks, resuming from the platform's confirmed offset (HEAD) after any
interruption, and reading the platform's `Vetpacs-Ingest` confirmation. An entry is done only when
the platform says stored/duplicate with the SHA-256 we computed ourselves; then its spool files go.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests
from cryptography import x509
from tusclient.client import TusClient
from tusclient.uploader.uploader import Uploader

from vetpacs.core.errors import VetpacsError
from vetpacs.gateway import pipeline
from vetpacs.gateway.policing import TOO_MANY_REQUESTS, HoldOff, retry_after_s
from vetpacs.gateway.queue import DONE, FAILED, STOPPED, UPLOADING, VERIFYING, Entry, Queue, backoff_seconds
from vetpacs.gateway.records import RecordStore
from vetpacs.gateway.spool import Spool

log = logging.getLogger("vetpacs.gateway.uploader")

UPLOADS_PATH = "/api/v1/uploads/"
TUS_VERSION = "1.0.0"
CHECKSUM_REFUSED = 460  # tus checksum extension: "Checksum Mismatch"
CHUNK_RETRIES = 3  # a chunk refused for its checksum or a busy lock is sent again this many times
FAILED_PREFIX = "上传失败 / upload failed: "
REFUSED_PREFIX = "平台拒收 / refused by the platform: "
IDLE_POLL_S = 0.2
RATE_LIMITED = "平台限流 / rate limited by the platform: "
RATE_LIMIT_RETRIES = 30  # requests sent again after a 429 before the attempt counts as failed


class TransientError(Exception):
    """The platform is unreachable or busy: retry later with back-off (or when it said, retry_after_s)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RefusedError(Exception):
    """The platform refused the file for good: it will not be accepted as it is."""


class Stopped(Exception):  # noqa: N818 - a signal between chunks, not an error
    """A user stopped the entry between two chunks."""


class TokenBucket:
    """The bandwidth cap (R-7.2.4): bytes per second shared by every upload of this gateway."""

    def __init__(
        self,
        rate_bytes_per_s: int,
        burst_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate_bytes_per_s)
        # A small burst: a quarter of a second's worth, so the line is never flooded for long.
        self.capacity = float(burst_bytes or max(16 * 1024, rate_bytes_per_s // 4))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                want = min(float(n), self.capacity)
                if self._tokens >= want - 1e-6:  # float rounding must not leave a sliver to wait for
                    self._tokens = max(0.0, self._tokens - want)
                    n -= int(want)
                    if n <= 0:
                        return
                    continue
                wait = (want - self._tokens) / self.rate
            self._sleep(wait)


class _Body(io.RawIOBase):
    """A chunk as a request body read in small pieces, each paid for from the bucket."""

    PIECE = 16 * 1024

    def __init__(self, data: bytes, bucket: TokenBucket | None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._bucket = bucket

    def __len__(self) -> int:
        return len(self._data)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # requests sizes the body as len - tell; RawIOBase's tell would raise and make it chunked.
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self._data) - self._pos
        size = min(size, self.PIECE, len(self._data) - self._pos)
        if size <= 0:
            return b""
        if self._bucket is not None:
            self._bucket.take(size)
        out = bytes(self._data[self._pos : self._pos + size])
        self._pos += size
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class Confirmation:
    status: str  # stored | duplicate | refused
    sha256: str
    reason: str
    raw: str


def parse_ingest_header(value: str) -> Confirmation:
    """`stored; sop-instance-uid=...; sha256=<hex>` or `refused; reason=<code>; detail="..."`."""
    parts = [p.strip() for p in value.split(";")]
    fields: dict[str, str] = {}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        fields[key.strip()] = val.strip().strip('"')
    return Confirmation(
        parts[0].lower(),
        fields.get("sha256", "").lower(),
        " ".join(x for x in (fields.get("reason", ""), fields.get("detail", "")) if x),
        value,
    )


# tuspy is untyped; its Uploader is used through this alias so strict typing stays on our side.
_TusUploader: Any = Uploader


class GatewayTusUploader(_TusUploader):  # type: ignore[misc]
    """tuspy's Uploader over a kept-alive session, with sha256 chunk checksums and the cap."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    def __init__(
        self,
        *,
        session: requests.Session,
        bucket: TokenBucket | None,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int], None],
        timeout_s: float,
        hold_off: HoldOff | None = None,
        on_limited: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.session = session
        self.bucket = bucket
        self.hold_off = hold_off or HoldOff()
        self.on_limited = on_limited
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.timeout_s = timeout_s
        self.ingest: str | None = None
        self.offset: int = 0
        self.url: str | None = None
        self.request: requests.Response | None = None
        super().__init__(upload_checksum=True, **kwargs)

    def _send(
        self, method: str, url: str, headers: dict[str, str], chunk: bytes | None = None
    ) -> requests.Response:
        """One tus request; a 429 from the platform's policing (R-7.2.4) waits its Retry-After and
        sends the same request again, so a transfer under way is not abandoned and begun afresh."""
        for _ in range(RATE_LIMIT_RETRIES):
            while (held := self.hold_off.remaining()) > 0:
                if self.should_stop():
                    raise Stopped
                time.sleep(min(held, 0.5))
            if self.should_stop():
                raise Stopped
            body = None if chunk is None else _Body(chunk, self.bucket)
            resp = self.session.request(method, url, data=body, headers=headers, timeout=self.timeout_s)
            if resp.status_code != TOO_MANY_REQUESTS:
                return resp
            wait = retry_after_s(resp) or 1.0
            self.hold_off.hold(wait)
            if self.on_limited is not None:
                self.on_limited(f"{RATE_LIMITED}{method} waits {wait:.0f} s (Retry-After)")
        return resp

    def _check(self, resp: requests.Response, what: str) -> None:
        if resp.status_code >= 500 or resp.status_code in (401, 408, TOO_MANY_REQUESTS):
            wait = retry_after_s(resp)
            if resp.status_code == TOO_MANY_REQUESTS:
                what = f"{RATE_LIMITED}{what}"
            raise TransientError(f"{what}: HTTP {resp.status_code} {_problem(resp)}", retry_after_s=wait)

    def create_url(self) -> str:
        """tus creation-with-upload: the POST carries the first chunk, so a small file needs one round trip.

        Sets offset (and the confirmation, when that chunk was the whole file) from the answer.
        """
        size = self.get_file_size()  # tuspy measures by seeking to the end: before the read, not inside it
        stream = self.get_file_stream()
        stream.seek(0)
        chunk = stream.read(min(self.chunk_size, size))
        digest = b64encode(hashlib.sha256(chunk).digest()).decode("ascii")
        headers = {
            **self.get_url_creation_headers(),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"sha256 {digest}",
        }
        try:
            resp = self._send("POST", str(self.client.url), headers, chunk)
        except requests.RequestException as exc:
            raise TransientError(f"creating the upload: {_why(exc)}") from None
        self._check(resp, "creating the upload")
        location = resp.headers.get("location")
        if not location:
            raise RefusedError(f"creating the upload: HTTP {resp.status_code} {_problem(resp)}")
        url = urljoin(str(self.client.url), location)
        self.url = url
        if resp.status_code == 201:
            self.offset = int(resp.headers.get("upload-offset") or 0)
            if resp.headers.get("vetpacs-ingest"):
                self.ingest = resp.headers["vetpacs-ingest"]
            self.on_progress(self.offset)
        else:
            # Created, but the first chunk was not taken (460: damaged on the way): resume from HEAD.
            log.warning("first chunk of %s not taken (HTTP %s); resuming", url, resp.status_code)
            self.offset = self.head() or 0
        return url

    def head(self) -> int | None:
        """The platform's confirmed offset (None: the upload is gone); notes a confirmation."""
        try:
            resp = self._send("HEAD", str(self.url), self.get_headers())
        except requests.RequestException as exc:
            raise TransientError(f"asking the upload's offset: {_why(exc)}") from None
        if resp.status_code in (404, 410):
            return None
        self._check(resp, "asking the upload's offset")
        if resp.headers.get("vetpacs-ingest"):
            self.ingest = resp.headers["vetpacs-ingest"]
        offset = resp.headers.get("upload-offset")
        if offset is None:
            raise TransientError(f"HEAD answered {resp.status_code} without Upload-Offset")
        return int(offset)

    def _do_request(self) -> None:
        for attempt in range(CHUNK_RETRIES + 1):
            if self.should_stop():
                raise Stopped
            stream = self.get_file_stream()
            stream.seek(self.offset)
            chunk = stream.read(self.get_request_length())
            digest = b64encode(hashlib.sha256(chunk).digest()).decode("ascii")
            headers = {
                **self.get_headers(),
                "Upload-Offset": str(self.offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": f"sha256 {digest}",
            }
            try:
                resp = self._send("PATCH", str(self.url), headers, chunk)
            except requests.RequestException as exc:
                raise TransientError(f"sending bytes {self.offset}+{len(chunk)}: {_why(exc)}") from None
            self.request = resp
            if resp.status_code == 204:
                if resp.headers.get("vetpacs-ingest"):
                    self.ingest = resp.headers["vetpacs-ingest"]
                self.on_progress(int(resp.headers.get("upload-offset", self.offset)))
                return
            self._check(resp, "sending a chunk")
            if resp.status_code == CHECKSUM_REFUSED:
                # The bytes were damaged on the way; the platform kept nothing of them: send again.
                log.warning("chunk at %s of %s failed its checksum; sending it again", self.offset, self.url)
            elif resp.status_code == 409:
                offset = self.head()
                if offset is None:
                    raise _Gone
                self.offset = offset
            elif resp.status_code == 423:
                time.sleep(0.5 * (attempt + 1))
            elif resp.status_code in (404, 410):
                raise _Gone
            else:
                raise RefusedError(f"sending a chunk: HTTP {resp.status_code} {_problem(resp)}")
        raise TransientError(f"a chunk at offset {self.offset} was refused {CHUNK_RETRIES + 1} times")

    def upload_chunk(self) -> None:
        self._do_request()
        assert self.request is not None
        self.offset = int(self.request.headers["upload-offset"])


class _Gone(Exception):  # noqa: N818
    """The platform no longer knows this upload (expired or deleted): start a new one."""


def _problem(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("detail") or body.get("title") or body)[:300]


def _why(exc: Exception) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "the platform cannot be reached (连接失败 / connection failed)"
    if isinstance(exc, requests.Timeout):
        return "the platform did not answer in time (超时 / timed out)"
    return str(exc)[:300]


@dataclass
class UploaderSettings:
    platform_url: str
    token: str
    parallel_uploads: int = 4
    chunk_size: int = 4 * 1024 * 1024
    bandwidth_bytes_per_s: int = 0
    retry_base_s: float = 2.0
    retry_cap_s: float = 300.0
    request_timeout_s: float = 60.0
    compress: bool = True
    # A file of at least this many bytes goes as this many tus partial uploads sent at once, joined by
    # a final upload (tus concatenation, gateway/parallel_upload.py); 1 part: every file in one upload.
    parallel_parts: int = 4
    parallel_parts_min_bytes: int = 32 * 1024 * 1024


class UploadService:
    """N workers taking entries from the queue: prepare (pipeline), send, confirm, clean the spool."""

    def __init__(
        self,
        queue: Queue,
        spool: Spool,
        settings: UploaderSettings,
        *,
        recipient: x509.Certificate | None,
        records: RecordStore | None = None,
    ) -> None:
        self.queue = queue
        self.records = records
        self.spool = spool
        self.settings = settings
        self.recipient = recipient
        self.bucket = TokenBucket(settings.bandwidth_bytes_per_s) if settings.bandwidth_bytes_per_s else None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_error = ""
        # the platform's Retry-After holds every worker of this gateway, not only the one told.
        self.hold_off = HoldOff()

    @property
    def tus_url(self) -> str:
        return self.settings.platform_url.rstrip("/") + UPLOADS_PATH

    def start(self) -> None:
        for n in range(self.settings.parallel_uploads):
            t = threading.Thread(target=self._work, name=f"upload-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _work(self) -> None:
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {self.settings.token}"})
        try:
            while not self._stop.is_set():
                held = self.hold_off.remaining()
                if held > 0:
                    self._stop.wait(held)
                    continue
                entry = self.queue.claim()
                if entry is None:
                    self._wake.wait(IDLE_POLL_S)
                    self._wake.clear()
                    continue
                try:
                    self.process(entry, session)
                except Exception as exc:  # keep serving: one bad entry never stops the others
                    log.exception("entry %s", entry.id)
                    self.queue.fail(entry.id, f"{FAILED_PREFIX}{exc}", retry_in=self._backoff(entry))
        finally:
            session.close()
            self.queue.close()

    def _backoff(self, entry: Entry) -> float:
        return backoff_seconds(entry.attempts, self.settings.retry_base_s, self.settings.retry_cap_s)

    def process(self, entry: Entry, session: requests.Session) -> None:
        """One attempt at one entry; leaves it done, failed (retrying or waiting) or as a user set it."""
        if not entry.upload_path or not Path(entry.upload_path).exists():
            prepared = self._prepare(entry)
            if prepared is None:
                return
            entry = prepared
        try:
            confirmation = self._transfer(entry, session)
        except Stopped:
            return
        except TransientError as exc:
            self.last_error = str(exc)
            retry_in = self._backoff(entry)
            if exc.retry_after_s is not None:
                self.hold_off.hold(exc.retry_after_s)
                retry_in = max(retry_in, exc.retry_after_s)
            self.queue.record_step(entry.id, "upload_failed", str(exc))
            self.queue.fail(entry.id, f"{FAILED_PREFIX}{exc}", retry_in=retry_in)
            return
        except RefusedError as exc:
            self.queue.record_step(entry.id, "refused", str(exc), upload_url=None)
            self.queue.fail(entry.id, f"{REFUSED_PREFIX}{exc}", retry_in=None)
            return
        self._confirm(entry, confirmation)

    def _prepare(self, entry: Entry) -> Entry | None:
        out = self.spool.ready_path(entry.id)
        try:
            prepared = pipeline.prepare(
                Path(entry.received_path),
                out,
                self.spool.root / "tmp",
                compress=self.settings.compress,
                recipient=self.recipient,
                records=self.records,
            )
        except VetpacsError as exc:
            self.queue.record_step(entry.id, "invalid", exc.detail)
            self.queue.fail(entry.id, f"无效数据 / invalid: {exc.code}: {exc.detail}", retry_in=None)
            return None
        self.queue.record_steps(
            entry.id,
            prepared.steps,
            upload_path=str(prepared.path),
            upload_sha256=prepared.sha256,
            upload_size=prepared.size,
            upload_url=None,
            bytes_sent=0,
        )
        return self.queue.get(entry.id)

    def _transfer(self, entry: Entry, session: requests.Session) -> Confirmation:
        assert entry.upload_path and entry.upload_sha256
        from vetpacs.gateway import parallel_upload  # it builds on this module's uploader

        if parallel_upload.wanted(entry, self.settings):
            return parallel_upload.ParallelTransfer(self, entry).run(session)
        with Path(entry.upload_path).open("rb") as f:
            up = self._tus(entry, session, f)
            if entry.upload_url:
                up.url = entry.upload_url
                try:
                    offset = up.head()
                except TransientError:
                    raise
                if offset is None:
                    up.url = None
                else:
                    up.offset = offset
            size = up.get_file_size()
            if not up.url:
                url = up.create_url()
                if up.ingest is None:  # not yet confirmed: note where to resume (done files need not)
                    # Lost in a power cut, the URL only costs a new upload of the same bytes ("duplicate").
                    self.queue.record_step(entry.id, "upload_created", url, durable=False, upload_url=url)
            while up.ingest is None:
                if up.offset >= size:
                    # Every byte is there but no outcome was recorded (a crash at the end): an empty
                    # PATCH at the full offset completes it again (docs/uploads.md, crash behaviour).
                    self.queue.set_state_if(entry.id, (UPLOADING,), VERIFYING)
                    up.stop_at = size
                    up.chunk_size = 0
                    up._do_request()
                    break
                if up.offset + up.get_request_length() >= size:
                    self.queue.set_state_if(entry.id, (UPLOADING,), VERIFYING)
                try:
                    up.upload_chunk()
                except _Gone:
                    up.create_url()
                    self.queue.record_step(
                        entry.id, "upload_created", f"{up.url} (the old one was gone)", upload_url=up.url
                    )
            if up.ingest is None:
                raise TransientError("the platform sent no Vetpacs-Ingest confirmation")
            return parse_ingest_header(up.ingest)

    def _tus(self, entry: Entry, session: requests.Session, f: BinaryIO) -> GatewayTusUploader:
        client = TusClient(self.tus_url, headers={"Tus-Resumable": TUS_VERSION})
        state_of = self.queue.state_of

        def progress(offset: int) -> None:
            # The last chunk's progress is written with the outcome: one transaction fewer per file.
            if offset < (entry.upload_size or 0):
                self.queue.update(entry.id, durable=False, bytes_sent=offset)

        return GatewayTusUploader(
            session=session,
            bucket=self.bucket,
            should_stop=lambda: state_of(entry.id) == STOPPED,
            on_progress=progress,
            timeout_s=self.settings.request_timeout_s,
            hold_off=self.hold_off,
            on_limited=lambda detail: self.queue.record_step(entry.id, "rate_limited", detail, durable=False),
            client=client,
            file_stream=f,
            chunk_size=self.settings.chunk_size,
            metadata={
                "filename": f"{entry.sop_instance_uid}.dcm",
                "sha256": entry.upload_sha256 or "",
                "sop-instance-uid": entry.sop_instance_uid,
            },
        )

    def _confirm(self, entry: Entry, c: Confirmation) -> None:
        if c.status in ("stored", "duplicate") and c.sha256 == entry.upload_sha256:
            # A stop that came after the last byte loses: the platform has it, and says so.
            moved = self.queue.set_state_if(
                entry.id,
                (UPLOADING, VERIFYING, STOPPED, FAILED),
                DONE,
                step=("confirmed", c.raw),
                done_at=time.time(),
                bytes_sent=entry.upload_size or 0,
                reason="",
                next_attempt_at=None,
            )
            if moved:
                self.spool.discard(entry.received_path, entry.upload_path)
            return
        if c.status in ("stored", "duplicate"):
            why = f"the platform confirmed SHA-256 {c.sha256 or '(none)'}, we sent {entry.upload_sha256}"
        else:
            why = c.reason or c.raw
        self.queue.record_step(entry.id, "refused", c.raw, upload_url=None)
        self.queue.fail(entry.id, f"{REFUSED_PREFIX}{why}", retry_in=None)


__all__ = ["DONE", "FAILED", "GatewayTusUploader", "TokenBucket", "UploadService", "UploaderSettings"]
