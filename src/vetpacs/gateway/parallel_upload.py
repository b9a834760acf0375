"""A large file sent as parallel parts joined by the platform: tus concatenation (R-6.2.1g/h, R-7.2.4).

A prepared file of at least `parallel_parts_min_bytes` is cut into `parallel_parts` byte ranges. Each
range is a tus partial upload (`Upload-Concat: partial`) sent by a thread of its own in chunks, each
chunk with its `Upload-Checksum: sha256` and paid for from the gateway's one bandwidth cap. The final
upload (`Upload-Concat: final;<url> ...`, carrying the whole file's SHA-256) is created right after the
partial uploads and before any byte is sent: the platform joins the parts and ingests the file in the
request that completes the last part, and the final upload's HEAD answers `Vetpacs-Ingest`. As for a
single upload, the entry is done only when that says stored/duplicate with our own SHA-256.

Resuming: the part URLs, their byte ranges and the offsets the platform confirmed are kept on the queue
entry (`upload_parts`, JSON), next to the final upload's URL in `upload_url`; they belong together, so
when the uploader clears `upload_url` (a refusal, a new preparation) the parts count for nothing. After
any interruption (kill -9 included) each part resumes at the offset the platform confirms (HEAD). A part
the platform no longer knows (404/410: expired) starts again from its first byte; since a final
upload's list of parts is fixed, the old final upload is then terminated (DELETE, which frees the parts
that survive) and a new one names the parts. A stop (停止上传) stops every part between two chunks.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests
from tusclient.client import TusClient

from vetpacs.gateway.queue import STOPPED, UPLOADING, VERIFYING, Entry
from vetpacs.gateway.uploader import (
    TUS_VERSION,
    Confirmation,
    GatewayTusUploader,
    RefusedError,
    Stopped,
    TransientError,
    _Gone,
    _problem,
    _why,
    parse_ingest_header,
)

if TYPE_CHECKING:
    from vetpacs.gateway.uploader import UploaderSettings, UploadService

log = logging.getLogger("vetpacs.gateway.uploader")

# Parts found gone (or lost mid-way) are made again this many times in one attempt, then back-off.
ROUNDS = 3


@dataclass
class Part:
    """One byte range of the file and its tus partial upload; `offset` is what the platform confirmed."""

    start: int
    length: int
    url: str | None = None
    offset: int = 0

    @property
    def complete(self) -> bool:
        return self.url is not None and self.offset >= self.length


@dataclass
class Plan:
    """The final upload and its parts, as recorded on the queue entry."""

    final: str | None
    parts: list[Part]

    def dumps(self) -> str:
        return json.dumps({"final": self.final, "parts": [asdict(p) for p in self.parts]})

    @property
    def confirmed(self) -> int:
        return sum(min(p.offset, p.length) for p in self.parts if p.url)


def split(size: int, count: int) -> list[Part]:
    """`count` consecutive byte ranges covering `size` bytes, as even as can be (order = byte order)."""
    count = max(1, min(count, size))
    base, extra = divmod(size, count)
    parts, start = [], 0
    for i in range(count):
        length = base + (1 if i < extra else 0)
        parts.append(Part(start, length))
        start += length
    return parts


def recorded_plan(entry: Entry) -> Plan | None:
    """The parts recorded on the entry, if they still belong to its upload (its `upload_url`)."""
    if not entry.upload_parts or not entry.upload_url:
        return None
    try:
        data = json.loads(entry.upload_parts)
        plan = Plan(data["final"], [Part(**p) for p in data["parts"]])
    except (ValueError, KeyError, TypeError):
        log.warning("entry %s: unreadable parts record; starting the parts again", entry.id)
        return None
    if plan.final != entry.upload_url:
        return None
    # The ranges must cover the prepared file exactly, in order; anything else is a stale record.
    start = 0
    for part in plan.parts:
        if part.start != start or part.length <= 0:
            return None
        start += part.length
    return plan if start == entry.upload_size else None


def wanted(entry: Entry, settings: UploaderSettings) -> bool:
    """Send this entry as parallel parts? Parts under way continue; a single upload under way does too."""
    if recorded_plan(entry) is not None:
        return True
    if entry.upload_url:
        return False
    size = entry.upload_size or 0
    return settings.parallel_parts > 1 and size >= max(settings.parallel_parts_min_bytes, 2)


class _Window(io.RawIOBase):
    """A byte range of an open file as a file of its own (what tuspy reads a part's chunks from)."""

    def __init__(self, f: io.BufferedReader, start: int, length: int) -> None:
        self._f = f
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1, /) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        if size <= 0:
            return b""
        self._f.seek(self._start + self._pos)
        data = self._f.read(size)
        self._pos += len(data)
        return data

    def readinto(self, b: Any, /) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Aborted(Exception):  # noqa: N818 - a signal between chunks, not an error
    """Another part failed: this one stops between chunks so the attempt ends together."""


@dataclass(frozen=True)
class _Head:
    known: bool
    offset: int | None
    ingest: str | None


class ParallelTransfer:
    """One attempt at sending one entry's file as parallel parts; `run` returns the platform's outcome."""

    def __init__(self, service: UploadService, entry: Entry) -> None:
        assert entry.upload_path and entry.upload_sha256 and entry.upload_size
        self.service = service
        self.queue = service.queue
        self.settings = service.settings
        self.entry = entry
        self.path = Path(entry.upload_path)
        self.size = entry.upload_size
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._ctl: GatewayTusUploader | None = None

    @property
    def _headers(self) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION}

    def run(self, session: requests.Session) -> Confirmation:
        plan = recorded_plan(self.entry) or Plan(None, split(self.size, self.settings.parallel_parts))
        # HEAD, POST and DELETE of the parts and the final upload go over the worker's session.
        self._ctl = self._uploader(session, io.BytesIO(), self._stopped, lambda _offset: None)
        for _ in range(ROUNDS):
            outcome = self._reconcile(plan)
            if outcome is not None:
                return outcome
            try:
                self._send_parts(plan)
            except _Gone:
                continue  # a part went while it was being sent: make it again
            outcome = self._outcome(plan)
            if outcome is not None:
                return outcome
        raise TransientError(f"the parts of this file were lost on the platform {ROUNDS} times in a row")

    # -- the platform's view of the parts -----------------------------------------------------------

    def _reconcile(self, plan: Plan) -> Confirmation | None:
        """Ask where every part stands, make the missing ones and the final upload, record the plan."""
        if plan.final:
            head = self._head(plan.final)
            if head.ingest:
                return parse_ingest_header(head.ingest)  # joined and ingested before we heard of it
            if not head.known:
                plan.final = None
        lost = []
        for i, part in enumerate(plan.parts):
            if part.url is None:
                continue
            head = self._head(part.url)
            if head.known and head.offset is not None:
                part.offset = head.offset
                continue
            log.warning(
                "entry %s: part %s (%s) is gone on the platform; sending it again", self.entry.id, i, part.url
            )
            part.url, part.offset = None, 0
            lost.append(str(i))
        if plan.final and lost:
            # A final upload names its parts for good: let it go (its surviving parts are free again).
            self._terminate(plan.final)
            plan.final = None
        made = False
        for part in plan.parts:
            if part.url is None:
                part.url, part.offset = self._create(part), 0
                made = True
        ingest = None
        if plan.final is None:
            plan.final, ingest = self._create_final(plan)
            made = True
        if made:
            why = f" (part {', '.join(lost)} was gone)" if lost else ""
            self.queue.record_step(
                self.entry.id,
                "upload_created",
                f"{plan.final} joining {len(plan.parts)} parts{why}",
                upload_url=plan.final,
                upload_parts=plan.dumps(),
                bytes_sent=plan.confirmed,
            )
        else:
            self.queue.update(
                self.entry.id, durable=False, upload_parts=plan.dumps(), bytes_sent=plan.confirmed
            )
        return parse_ingest_header(ingest) if ingest else None

    def _request(
        self, method: str, url: str, headers: dict[str, str], what: str, chunk: bytes | None = None
    ) -> requests.Response:
        """One control request over the worker's session, policed as the chunks are (429, Retry-After)."""
        assert self._ctl is not None
        try:
            resp: requests.Response = self._ctl._send(method, url, {**self._headers, **headers}, chunk)
        except requests.RequestException as exc:
            raise TransientError(f"{what}: {_why(exc)}") from None
        self._ctl._check(resp, what)
        return resp

    def _head(self, url: str) -> _Head:
        what = "asking an upload's offset"
        resp = self._request("HEAD", url, {}, what)
        if resp.status_code in (404, 410):
            return _Head(False, None, None)
        if resp.status_code != 200:
            raise RefusedError(f"{what}: HTTP {resp.status_code} {_problem(resp)}")
        offset = resp.headers.get("upload-offset")
        return _Head(True, None if offset is None else int(offset), resp.headers.get("vetpacs-ingest"))

    def _post(self, headers: dict[str, str], what: str) -> requests.Response:
        resp = self._request("POST", self.service.tus_url, headers, what)
        if resp.status_code != 201 or not resp.headers.get("location"):
            raise RefusedError(f"{what}: HTTP {resp.status_code} {_problem(resp)}")
        return resp

    def _create(self, part: Part) -> str:
        headers = {"Upload-Length": str(part.length), "Upload-Concat": "partial"}
        resp = self._post(headers, "creating a part")
        return urljoin(self.service.tus_url, resp.headers["location"])

    def _create_final(self, plan: Plan) -> tuple[str, str | None]:
        """tus concatenation: the final upload, with the whole file's SHA-256 for the platform to check."""
        metadata = {
            "filename": f"{self.entry.sop_instance_uid}.dcm",
            "sha256": self.entry.upload_sha256 or "",
            "sop-instance-uid": self.entry.sop_instance_uid,
        }
        resp = self._post(
            {
                "Upload-Concat": "final;" + " ".join(str(p.url) for p in plan.parts),
                "Upload-Metadata": ",".join(
                    f"{k} {b64encode(v.encode()).decode('ascii')}" for k, v in metadata.items()
                ),
            },
            "creating the final upload",
        )
        return urljoin(self.service.tus_url, resp.headers["location"]), resp.headers.get("vetpacs-ingest")

    def _terminate(self, url: str) -> None:
        what = "ending the old final upload"
        resp = self._request("DELETE", url, {}, what)
        if resp.status_code not in (204, 404, 410):
            raise RefusedError(f"{what}: HTTP {resp.status_code} {_problem(resp)}")

    def _outcome(self, plan: Plan) -> Confirmation | None:
        """Every part is complete: the final upload says what the archive made of the file."""
        head = self._head(str(plan.final))
        if head.ingest:
            return parse_ingest_header(head.ingest)
        if not head.known:
            return None  # gone meanwhile: the next round makes it again
        # Complete parts but no outcome (the platform stopped during the join): an empty PATCH at a
        # complete part's full offset joins again (docs/uploads.md, crash behaviour).
        last = plan.parts[-1]
        digest = b64encode(hashlib.sha256(b"").digest()).decode("ascii")
        headers = {
            "Upload-Offset": str(last.length),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"sha256 {digest}",
        }
        resp = self._request("PATCH", str(last.url), headers, "joining the parts again", b"")
        head = self._head(str(plan.final))
        if head.ingest:
            return parse_ingest_header(head.ingest)
        if not head.known or resp.status_code in (404, 410):
            return None
        raise TransientError("the platform sent no Vetpacs-Ingest confirmation for the joined parts")

    # -- sending ---------------------------------------------------------------------------------

    def _send_parts(self, plan: Plan) -> None:
        """One thread per unfinished part; the first failure stops the others between chunks."""
        self._abort.clear()
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=self._send_part_guarded,
                args=(plan, i, errors),
                name=f"upload-{self.entry.id}-part-{i}",
                daemon=True,
            )
            for i, part in enumerate(plan.parts)
            if not part.complete
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise _worst(errors)

    def _send_part_guarded(self, plan: Plan, index: int, errors: list[BaseException]) -> None:
        try:
            self._send_part(plan, index)
        except _Aborted:
            pass
        except BaseException as exc:  # handed to the coordinating thread, which decides
            with self._lock:
                errors.append(exc)
            self._abort.set()
        finally:
            self.queue.close()  # this thread's connection to the queue file

    def _stopped(self) -> bool:
        return self.queue.state_of(self.entry.id) == STOPPED

    def _should_stop(self) -> bool:
        if self._abort.is_set():
            raise _Aborted
        return self._stopped()

    def _uploader(
        self,
        session: requests.Session,
        stream: io.IOBase,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int], None],
    ) -> GatewayTusUploader:
        """The single upload's tuspy uploader (checksums, cap, policing) on a stream of our choosing."""
        entry_id = self.entry.id
        return GatewayTusUploader(
            session=session,
            bucket=self.service.bucket,
            should_stop=should_stop,
            on_progress=on_progress,
            timeout_s=self.settings.request_timeout_s,
            hold_off=self.service.hold_off,
            on_limited=lambda detail: self.queue.record_step(entry_id, "rate_limited", detail, durable=False),
            client=TusClient(self.service.tus_url, headers=self._headers),
            file_stream=stream,
            chunk_size=self.settings.chunk_size,
        )

    def _send_part(self, plan: Plan, index: int) -> None:
        part = plan.parts[index]
        with requests.Session() as session, self.path.open("rb") as f:
            session.headers.update({"Authorization": f"Bearer {self.settings.token}"})
            up = self._uploader(
                session,
                _Window(f, part.start, part.length),
                self._should_stop,
                lambda offset: self._progress(plan, part, offset),
            )
            up.url, up.offset = part.url, part.offset
            while up.offset < part.length:
                if up.offset + up.get_request_length() >= part.length and self._others_complete(plan, part):
                    # The file's last bytes: the platform joins and checks it in this request.
                    self.queue.set_state_if(self.entry.id, (UPLOADING,), VERIFYING)
                up.upload_chunk()

    def _others_complete(self, plan: Plan, part: Part) -> bool:
        with self._lock:
            return all(p.complete for p in plan.parts if p is not part)

    def _progress(self, plan: Plan, part: Part, offset: int) -> None:
        with self._lock:
            part.offset = offset
            record, sent = plan.dumps(), plan.confirmed
        # Lost in a power cut, an offset only costs a HEAD: the platform's is the one that counts.
        self.queue.update(self.entry.id, durable=False, upload_parts=record, bytes_sent=sent)


def _worst(errors: list[BaseException]) -> BaseException:
    """What the attempt ends with when parts failed differently: a refusal, a lost part, the line, a stop."""
    for kind in (RefusedError, _Gone, TransientError, Stopped):
        for exc in errors:
            if isinstance(exc, kind):
                return exc
    return errors[0]


__all__ = ["ParallelTransfer", "Part", "Plan", "recorded_plan", "split", "wanted"]
