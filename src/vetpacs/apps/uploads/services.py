"""Upload use cases: create, append a chunk (fsync before the offset is committed), join, complete, expire.

Crash safety (kill -9 at any point): a chunk's bytes are fsynced before the new offset is committed,
so the committed offset never claims bytes that are not on disk. Bytes past the committed offset (a
crash between fsync and commit, or a refused chunk) are cut off by the next PATCH before it writes.
A completed upload whose outcome was not recorded (a crash during ingest) is completed again by an
empty PATCH at its full offset; ingest judges the repeat as a duplicate, so nothing is stored twice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vetpacs.apps.archive.services import file_sha256, ingest_file
from vetpacs.apps.audit import services as audit
from vetpacs.apps.uploads.models import Upload
from vetpacs.core.errors import Errors, VetpacsError

log = logging.getLogger(__name__)

# Bytes read from the request body at a time: large enough to be cheap, small enough for memory.
READ_CHUNK_BYTES = 1024 * 1024
# tus 1.0 checksum extension: the server MUST support sha1; sha256 is what the gateway sends.
CHECKSUM_ALGORITHMS = ("sha256", "sha1")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
State = Upload.State


class Body(Protocol):
    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Caller:
    """Who is uploading: the organisation that will own the data, and how audit names them."""

    organisation_id: int
    actor: str
    user_id: int | None = None
    ip: str | None = None


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum header: the algorithm and the digest the chunk must have."""

    algorithm: str
    digest: bytes


def uploads_dir() -> Path:
    return Path(settings.VETPACS_INCOMING_DIR) / "uploads"


def data_path(upload: Upload) -> Path:
    # The name comes from the upload's own id (a UUID), never from anything the client sent.
    return uploads_dir() / f"{upload.id.hex}.part"


def parse_metadata(header: str) -> dict[str, str]:
    """tus 1.0 Upload-Metadata: comma-separated `key base64(value)` pairs; a key may stand alone."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise VetpacsError(
                Errors.BAD_REQUEST, f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text"
            ) from exc
        metadata[key] = value
    declared = metadata.get("sha256")
    if declared is not None and not SHA256_HEX.fullmatch(declared):
        raise VetpacsError(
            Errors.BAD_REQUEST, "Upload-Metadata sha256 must be the file's SHA-256 as 64 hexadecimal digits"
        )
    return metadata


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())


def parse_checksum(header: str) -> Checksum:
    """tus 1.0 Upload-Checksum: `<algorithm> <base64 digest>`; an unsupported algorithm is a 400."""
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise VetpacsError(
            Errors.BAD_REQUEST,
            f"Upload-Checksum algorithm {algorithm!r} is not supported; use one of "
            + ", ".join(CHECKSUM_ALGORITHMS),
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Checksum digest is not base64") from exc
    return Checksum(algorithm, digest)


def _check_length(length: int) -> None:
    limit = int(settings.VETPACS_MAX_UPLOAD_BYTES)
    if length > limit:
        raise VetpacsError(
            Errors.PAYLOAD_TOO_LARGE, f"the upload declares {length} bytes; at most {limit} are allowed"
        )


def create_upload(
    *,
    caller: Caller,
    length: int | None,
    metadata: dict[str, str],
    concat: str = "",
    parts: Sequence[str] = (),
) -> Upload:
    """tus creation: a plain or partial upload of `length` bytes, or a final upload joining `parts`."""
    if concat == Upload.Concat.FINAL:
        return _create_final(caller=caller, length=length, metadata=metadata, parts=list(parts))
    if length is None:
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Length is required (deferred length is not supported)")
    if length < 0:
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Length must not be negative")
    _check_length(length)
    upload = Upload.objects.create(
        organisation_id=caller.organisation_id,
        user_id=caller.user_id,
        actor=caller.actor,
        length=length,
        metadata=metadata,
        concat=concat,
    )
    if length == 0:
        # Nothing to wait for: the (empty) file is complete as created.
        with _locked(upload, wait=True) as f:
            upload = _finish(upload, f, caller)
    return upload


def _create_final(
    *, caller: Caller, length: int | None, metadata: dict[str, str], parts: list[str]
) -> Upload:
    if not parts:
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Concat final names no partial uploads")
    with transaction.atomic():
        found = {
            str(p.id): p
            for p in Upload.objects.select_for_update().filter(
                id__in=parts, organisation_id=caller.organisation_id, concat=Upload.Concat.PARTIAL
            )
        }
        for part in parts:
            if part not in found:
                raise VetpacsError(
                    Errors.BAD_REQUEST, f"Upload-Concat names {part}, not a partial upload here"
                )
            if found[part].final_id is not None:
                raise VetpacsError(
                    Errors.BAD_REQUEST, f"partial upload {part} is already part of a final upload"
                )
        if len(set(parts)) != len(parts):
            raise VetpacsError(Errors.BAD_REQUEST, "Upload-Concat names the same partial upload twice")
        total = sum(found[p].length for p in parts)
        if length is not None and length != total:
            raise VetpacsError(
                Errors.BAD_REQUEST, f"Upload-Length {length} differs from the partial uploads' total {total}"
            )
        _check_length(total)
        final = Upload.objects.create(
            organisation_id=caller.organisation_id,
            user_id=caller.user_id,
            actor=caller.actor,
            length=total,
            metadata=metadata,
            concat=Upload.Concat.FINAL,
            parts=parts,
        )
        Upload.objects.filter(id__in=parts).update(final=final)
    return _join(final, caller)


def get_upload(upload_id: uuid.UUID | str, *, organisation_ids: frozenset[int] | set[int]) -> Upload:
    """The upload if the caller's organisations own it; another organisation's upload is not found."""
    upload = Upload.objects.filter(id=upload_id, organisation_id__in=organisation_ids).first()
    if upload is None:
        raise VetpacsError(Errors.NOT_FOUND, f"no upload {upload_id}")
    return upload


@contextlib.contextmanager
def _locked(upload: Upload, *, wait: bool) -> Iterator[BinaryIO]:
    """The upload's file, opened and exclusively locked (flock: every thread and process on this host).

    A request that would wait answers 423 instead (wait=False): a client retrying after a broken
    connection should not queue behind the request still reading the dead one.
    """
    path = data_path(upload)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise VetpacsError(
                Errors.UPLOAD_LOCKED, f"upload {upload.id} is being written by another request"
            ) from exc
        yield f
    finally:
        f.close()


def _refresh(upload: Upload) -> Upload:
    """The row as committed now (under the file lock); not found if it went meanwhile."""
    fresh = Upload.objects.filter(pk=upload.pk).first()
    if fresh is None:
        with contextlib.suppress(FileNotFoundError):
            data_path(upload).unlink()  # re-created by our open(O_CREAT) after a termination
        raise VetpacsError(Errors.NOT_FOUND, f"no upload {upload.id}")
    return fresh


def append(
    upload: Upload,
    *,
    caller: Caller,
    offset: int,
    body: Body,
    content_length: int | None,
    checksum: Checksum | None = None,
) -> Upload:
    """tus PATCH: write the body at `offset`, fsync, then commit the new offset; complete at the end."""
    if upload.concat == Upload.Concat.FINAL:
        # tus 1.0 concatenation: "The Server MUST respond with 403 Forbidden to PATCH requests against a
        # final upload URL".
        raise VetpacsError(
            Errors.FORBIDDEN, "a final upload is made by concatenation; PATCH its partial uploads"
        )
    _check_offset(upload, offset)
    remaining = upload.length - upload.offset
    if content_length is not None and content_length > remaining:
        raise VetpacsError(
            Errors.PAYLOAD_TOO_LARGE,
            f"the chunk has {content_length} bytes; {remaining} remain of the upload's {upload.length}",
        )
    if not (upload.done or upload.state == State.COMPLETE):
        upload = _write(upload, caller=caller, offset=offset, body=body, checksum=checksum)
    if upload.final_id is not None and upload.state == State.COMPLETE:
        # Also on a repeated PATCH: a join a crash interrupted is done again.
        _join(Upload.objects.get(pk=upload.final_id), caller)
    return upload


def _write(upload: Upload, *, caller: Caller, offset: int, body: Body, checksum: Checksum | None) -> Upload:
    with _locked(upload, wait=False) as f:
        upload = _refresh(upload)
        _check_offset(upload, offset)
        if upload.done or upload.state == State.COMPLETE:
            return upload
        start = _cut_to_committed(upload, f, caller)
        received = _receive(upload, f, body, start, checksum)
        if received:
            # The bytes are on disk (fsynced): only now may the offset say so.
            Upload.objects.filter(pk=upload.pk, offset=start).update(offset=start + received)
            upload.offset = start + received
        if upload.offset == upload.length:
            upload = _finish(upload, f, caller)
    return upload


def _check_offset(upload: Upload, offset: int) -> None:
    if offset != upload.offset:
        raise VetpacsError(
            Errors.OFFSET_MISMATCH,
            f"Upload-Offset {offset} does not match the upload's offset {upload.offset}; "
            "ask with HEAD and resume from there",
        )


def _cut_to_committed(upload: Upload, f: BinaryIO, caller: Caller) -> int:
    """Drop bytes past the committed offset (left by a crash or a refused chunk); refuse if bytes are lost."""
    size = f.seek(0, os.SEEK_END)
    if size < upload.offset:
        _record_outcome(
            upload,
            caller,
            state=State.REFUSED,
            reason_code=Errors.STORAGE_FAILED.code,
            reason=f"the upload's first {upload.offset} bytes are no longer on this server; upload it again",
        )
        raise VetpacsError(Errors.STORAGE_FAILED, upload.reason)
    if size > upload.offset:
        f.truncate(upload.offset)
    f.seek(upload.offset)
    return upload.offset


def _receive(upload: Upload, f: BinaryIO, body: Body, start: int, checksum: Checksum | None) -> int:
    """Copy the body to the file; returns how many bytes may be committed (0 when the chunk is refused)."""
    remaining = upload.length - start
    digest = hashlib.new(checksum.algorithm) if checksum else None
    received = 0
    broken = False
    while True:
        try:
            chunk = body.read(min(READ_CHUNK_BYTES, remaining - received + 1))
        except OSError:
            # The connection broke mid-chunk: keep what arrived (tus resumes from there) unless a
            # checksum was promised for the whole chunk, which can then not be verified.
            broken = True
            break
        if not chunk:
            break
        received += len(chunk)
        if received > remaining:
            f.truncate(start)
            raise VetpacsError(
                Errors.PAYLOAD_TOO_LARGE,
                f"the chunk runs past the upload's declared length of {upload.length} bytes",
            )
        f.write(chunk)
        if digest is not None:
            digest.update(chunk)
    f.flush()
    if (
        checksum is not None
        and digest is not None
        and (broken or not hmac.compare_digest(digest.digest(), checksum.digest))
    ):
        # tus 1.0 checksum: a mismatching chunk is discarded; the offset does not move.
        f.truncate(start)
        os.fsync(f.fileno())
        raise VetpacsError(
            Errors.CHECKSUM_MISMATCH,
            "the chunk was cut short before its checksum could be verified"
            if broken
            else f"the chunk's bytes do not match its Upload-Checksum ({checksum.algorithm})",
        )
    os.fsync(f.fileno())
    return received


def _finish(upload: Upload, f: BinaryIO, caller: Caller) -> Upload:
    """Every byte is here: a partial upload waits for its final one; any other goes to ingest."""
    if upload.concat == Upload.Concat.PARTIAL:
        Upload.objects.filter(pk=upload.pk).update(state=State.COMPLETE)
        upload.state = State.COMPLETE
        return upload
    path = data_path(upload)
    sha256 = file_sha256(path)
    declared = upload.metadata.get("sha256") or None
    try:
        # The ingest service checks the declared SHA-256 before anything is stored.
        result = ingest_file(
            path,
            organisation_id=upload.organisation_id,
            actor=caller.actor,
            user_id=caller.user_id,
            ip=caller.ip,
            source="upload",
            declared_sha256=declared,
            sha256=sha256,
        )
    except VetpacsError as exc:
        _record_outcome(
            upload, caller, state=State.REFUSED, sha256=sha256, reason_code=exc.code, reason=exc.detail
        )
    else:
        state = State.DUPLICATE if result.status == "duplicate" else State.STORED
        _record_outcome(
            upload,
            caller,
            state=state,
            sha256=sha256,
            sop_instance_uid=result.sop_instance_uid,
            study_instance_uid=result.study_instance_uid,
        )
    f.truncate(0)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return upload


def _record_outcome(upload: Upload, caller: Caller, *, state: str, **fields: str) -> None:
    """The outcome on the row and in the audit log, in one transaction: the gateway's confirmation."""
    for name, value in fields.items():
        setattr(upload, name, value)
    upload.state = state
    upload.completed_at = timezone.now()
    with transaction.atomic():
        upload.save(update_fields=["state", "completed_at", *fields])
        refused = state == State.REFUSED
        audit.record(
            "upload.refused" if refused else "upload.completed",
            organisation_id=upload.organisation_id,
            user_id=caller.user_id,
            actor=caller.actor,
            ip=caller.ip,
            target=f"upload:{upload.id}",
            result="refused" if refused else "ok",
            detail={
                "state": state,
                "filename": upload.metadata.get("filename", ""),
                "size": upload.length,
                "sha256": upload.sha256,
                "sop_instance_uid": upload.sop_instance_uid,
                "reason_code": upload.reason_code,
                "reason": upload.reason,
            },
        )


def _join(final: Upload, caller: Caller) -> Upload:
    """tus concatenation: once every partial upload is complete, the final upload is their bytes in order."""
    with _locked(final, wait=True) as f:
        final = _refresh(final)
        if final.done:
            return final
        partials = {str(p.id): p for p in Upload.objects.filter(id__in=final.parts)}
        if len(partials) != len(final.parts) or any(p.state != State.COMPLETE for p in partials.values()):
            return final  # joined when the last partial upload completes
        f.truncate(0)
        for part in final.parts:
            with data_path(partials[part]).open("rb") as src:
                shutil.copyfileobj(src, f, READ_CHUNK_BYTES)
        f.flush()
        os.fsync(f.fileno())
        with transaction.atomic():
            Upload.objects.filter(pk=final.pk).update(offset=final.length)
            # tus 1.0: "the Server MAY delete partial uploads after concatenation".
            Upload.objects.filter(id__in=final.parts).delete()
        final.offset = final.length
        for part in partials.values():
            with contextlib.suppress(FileNotFoundError):
                data_path(part).unlink()
        return _finish(final, f, caller)


def terminate(upload: Upload, *, caller: Caller) -> None:
    """tus termination: the upload and its bytes go. A finished upload's archived instance stays."""
    with _locked(upload, wait=False):
        upload = _refresh(upload)
        with transaction.atomic():
            Upload.objects.filter(pk=upload.pk).delete()
            audit.record(
                "upload.terminated",
                organisation_id=upload.organisation_id,
                user_id=caller.user_id,
                actor=caller.actor,
                ip=caller.ip,
                target=f"upload:{upload.id}",
                detail={"offset": upload.offset, "length": upload.length, "state": upload.state},
            )
        with contextlib.suppress(FileNotFoundError):
            data_path(upload).unlink()


def sweep_expired(*, now: dt.datetime | None = None) -> int:
    """Remove uploads not completed within VETPACS_UPLOAD_EXPIRY_HOURS, and stray files. Returns how many."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(hours=int(settings.VETPACS_UPLOAD_EXPIRY_HOURS))
    removed = 0
    stale = Upload.objects.filter(state__in=[State.RECEIVING, State.COMPLETE], created_at__lte=cutoff)
    for upload in stale:
        try:
            with _locked(upload, wait=False):
                with transaction.atomic():
                    if not Upload.objects.filter(pk=upload.pk, state=upload.state).delete()[0]:
                        continue
                    audit.record(
                        "upload.expired",
                        organisation_id=upload.organisation_id,
                        target=f"upload:{upload.id}",
                        detail={"offset": upload.offset, "length": upload.length},
                    )
                with contextlib.suppress(FileNotFoundError):
                    data_path(upload).unlink()
                removed += 1
        except VetpacsError:
            continue  # being written right now: not abandoned after all
    # Files no row names (a crash between creating a row and its file, or after a row went).
    folder = uploads_dir()
    if folder.is_dir():
        # Only unfinished uploads keep a file; a finished one's was removed when it finished.
        unfinished = Upload.objects.filter(state__in=[State.RECEIVING, State.COMPLETE])
        known = {u.hex for u in unfinished.values_list("id", flat=True)}
        for path in folder.glob("*.part"):
            if path.stem not in known and path.stat().st_mtime <= cutoff.timestamp():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed
