"""STOW-RS (PS3.18 10.5): store_instances at root and study level.

Accepted: `multipart/related; type="application/dicom"` (PS3.18 10.5.1.1), each part one DICOM
Part 10 instance. The metadata-and-bulk-data forms (`type="application/dicom+json"` or
`application/dicom+xml`, PS3.18 10.5.1.2) are refused with 415 and a message saying so: every
sender we serve (gateways, modalities, dicomweb-client, OHIF) can send Part 10 instances.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from vetpacs.apps.archive.services import ingest_batch
from vetpacs.apps.audit import group_commit
from vetpacs.core.errors import DimseStatus, Errors, VetpacsError
from vetpacs.dicomweb.responses import DICOM_JSON, dicom_json_response
from vetpacs.dicomweb.upload import READ_CHUNK_BYTES, ReceivedPart, media_type_and_params, read_parts

log = logging.getLogger(__name__)

PART10 = "application/dicom"
METADATA_TYPES = ("application/dicom+json", "application/dicom+xml")
# Warning headers name at most this many failed parts; the response body lists them all.
MAX_WARNINGS = 20
PREAMBLE_BYTES = 128
# Parts ingested together (one index transaction): bounded by count and by bytes on disk.
BATCH_PARTS = 16
BATCH_BYTES = 64 * 1024 * 1024
# (0002,0000) or (0002,0001) in Explicit VR Little Endian: the File Meta group comes first.
FILE_META_GROUP = b"\x02\x00"


@dataclass(frozen=True)
class Stored:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    duplicate: bool


@dataclass(frozen=True)
class Failed:
    part: int
    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int
    code: str
    detail: str


def store_instances(request: HttpRequest, study: str | None = None) -> HttpResponse:
    """Store every part of the body; answer per PS3.18 10.5.3 with what was stored and what failed."""
    principal = request.principal  # type: ignore[attr-defined]
    organisation_id = principal.primary_organisation_id
    if organisation_id is None:
        raise VetpacsError(Errors.FORBIDDEN, "the caller belongs to no organisation that could own the data")
    boundary = _boundary(request.headers.get("Content-Type", ""))
    max_bytes = int(settings.VETPACS_MAX_UPLOAD_BYTES)
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        raise VetpacsError(
            Errors.PAYLOAD_TOO_LARGE,
            f"the request body declares {declared} bytes; at most {max_bytes} are allowed",
        )

    ip = request.META.get("REMOTE_ADDR")
    stored: list[Stored] = []
    failed: list[Failed] = []
    parts = read_parts(
        _body(request),
        boundary=boundary,
        incoming_dir=Path(settings.VETPACS_INCOMING_DIR),
        max_bytes=max_bytes,
    )
    batch = _Batch(organisation_id=organisation_id, actor=principal.label, ip=ip, study=study)
    try:
        for part in parts:
            early = _check_part(part)
            if early is not None:
                failed.append(early)
            else:
                batch.add(part)
            if batch.full():
                batch.store_into(stored, failed)
        batch.store_into(stored, failed)
    except VetpacsError as exc:
        batch.store_into(stored, failed)
        if not (stored or failed):
            raise
        # The body broke after some parts were handled: keep what was stored, say where it broke.
        failed.append(
            Failed(
                len(stored) + len(failed) + 1,
                "",
                "",
                int(DimseStatus.PROCESSING_FAILURE),
                exc.code,
                exc.detail,
            )
        )
    finally:
        batch.close()
        parts.close()

    if not (stored or failed):
        raise VetpacsError(Errors.BAD_REQUEST, "the multipart/related body holds no parts")

    base = _dicomweb_base(request)
    # PS3.18 10.5.3: 200 all stored; 202 some stored, some failed; 409 none stored.
    status = 200 if not failed else 202 if stored else 409
    _audit(
        principal=principal,
        organisation_id=organisation_id,
        study=study,
        stored=stored,
        failed=failed,
        ip=ip,
        status=status,
    )
    resp = dicom_json_response(_payload(base, study, stored, failed), status=status)
    # The bare media type: dicomweb-client compares Content-Type to "application/dicom+json" exactly and
    # drops the response otherwise; JSON is UTF-8 by definition (RFC 8259 8.1).
    resp["Content-Type"] = DICOM_JSON
    warnings = [_warning(f) for f in failed[:MAX_WARNINGS]]
    if warnings:
        resp["Warning"] = ", ".join(warnings)
    return resp


def _body(request: HttpRequest) -> BinaryIO:
    """The request body, as a stream.

    A body sent in chunks (Transfer-Encoding: chunked, no Content-Length; dicomweb-client sends every
    request larger than its chunk size so) is read from the server's input, which ends where the last
    chunk does: Django reads a body without a Content-Length as empty. read_parts still stops at
    VETPACS_MAX_UPLOAD_BYTES."""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not request.META.get("CONTENT_LENGTH"):
        return request.META["wsgi.input"]  # type: ignore[no-any-return]
    return request  # type: ignore[return-value]  # HttpRequest is file-like: read() streams the body


def _boundary(content_type: str) -> str:
    media_type, params = media_type_and_params(content_type)
    if media_type != "multipart/related":
        raise VetpacsError(
            Errors.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or '(none)'} is not supported; "
            f'send multipart/related; type="{PART10}" (PS3.18 10.5.1)',
        )
    part_type = params.get("type", PART10).lower()
    if part_type in METADATA_TYPES:
        raise VetpacsError(
            Errors.UNSUPPORTED_MEDIA_TYPE,
            f"STOW-RS with {part_type} metadata and bulk data parts is not supported; "
            f'send each instance as a DICOM Part 10 part (type="{PART10}")',
        )
    if part_type != PART10:
        raise VetpacsError(
            Errors.UNSUPPORTED_MEDIA_TYPE,
            f'multipart/related type "{part_type}" is not supported; use type="{PART10}"',
        )
    boundary = params.get("boundary", "")
    if not boundary:
        raise VetpacsError(Errors.BAD_REQUEST, "the multipart/related Content-Type has no boundary parameter")
    return boundary


def _check_part(part: ReceivedPart) -> Failed | None:
    """A part that cannot be an instance fails on its own before any ingest."""
    if not part.complete:
        return Failed(
            part.index,
            *_uids(part.path),
            int(DimseStatus.PROCESSING_FAILURE),
            "bad_request",
            f"part {part.index} was cut off: the body ended before its closing boundary",
        )
    if part.media_type not in ("", PART10):
        return Failed(
            part.index,
            "",
            "",
            int(DimseStatus.CANNOT_UNDERSTAND),
            "unsupported_media_type",
            f"part {part.index} has Content-Type {part.media_type}; only {PART10} parts are stored",
        )
    return None


class _Batch:
    """Parts kept (renamed out of the reader's way) until a batch is full, then ingested together."""

    def __init__(self, *, organisation_id: int, actor: str, ip: str | None, study: str | None) -> None:
        self.organisation_id, self.actor, self.ip, self.study = organisation_id, actor, ip, study
        self.parts: list[tuple[int, Path, str | None]] = []
        self.bytes = 0

    def add(self, part: ReceivedPart) -> None:
        kept = part.path.with_name(part.path.name + ".batch")
        os.replace(part.path, kept)
        sha256 = part.sha256 if not _add_preamble(kept) else None
        self.parts.append((part.index, kept, sha256))
        self.bytes += part.size

    def full(self) -> bool:
        return len(self.parts) >= BATCH_PARTS or self.bytes >= BATCH_BYTES

    def store_into(self, stored: list[Stored], failed: list[Failed]) -> None:
        if not self.parts:
            return
        try:
            outcomes = ingest_batch(
                [path for _, path, _ in self.parts],
                organisation_id=self.organisation_id,
                actor=self.actor,
                ip=self.ip,
                source="stow",
                expected_study_uid=self.study,
                sha256s=[sha for _, _, sha in self.parts],
            )
        except Exception as exc:  # noqa: BLE001 - one bad batch must not lose the others (PS3.18 10.5.3)
            log.exception("STOW parts %s could not be stored", [i for i, _, _ in self.parts])
            outcomes = [exc] * len(self.parts)
        for (index, path, _), outcome in zip(self.parts, outcomes, strict=True):
            if isinstance(outcome, VetpacsError):
                failed.append(
                    Failed(
                        index,
                        *_uids(path),
                        int(outcome.dimse_status),
                        outcome.code,
                        f"part {index}: {outcome.detail}",
                    )
                )
            elif isinstance(outcome, Exception):
                failed.append(
                    Failed(
                        index,
                        *_uids(path),
                        int(DimseStatus.PROCESSING_FAILURE),
                        "processing_failure",
                        f"part {index} could not be processed: {type(outcome).__name__}",
                    )
                )
            else:
                stored.append(
                    Stored(
                        outcome.sop_class_uid,
                        outcome.sop_instance_uid,
                        outcome.study_instance_uid,
                        outcome.series_instance_uid,
                        duplicate=outcome.status == "duplicate",
                    )
                )
        self.close()

    def close(self) -> None:
        for _, path, _ in self.parts:
            path.unlink(missing_ok=True)
        self.parts, self.bytes = [], 0


def _add_preamble(path: Path) -> bool:
    """Give a part that starts straight with the File Meta group its preamble and 'DICM' prefix.

    PS3.10 7.1: a Part 10 file opens with a 128-byte preamble and "DICM". pydicom's dcmwrite leaves
    both out for datasets built in code (what dicomweb-client and highdicom send), yet the File Meta
    Information that follows is complete, so the instance is understood. Rare: the copy is cheap.
    """
    with path.open("rb") as f:
        head = f.read(PREAMBLE_BYTES + 4)
    if head[PREAMBLE_BYTES:] == b"DICM" or not head.startswith(FILE_META_GROUP):
        return False
    fixed = path.with_name(path.name + ".part10")
    with path.open("rb") as src, fixed.open("wb") as dst:
        dst.write(b"\0" * PREAMBLE_BYTES + b"DICM")
        shutil.copyfileobj(src, dst, READ_CHUNK_BYTES)
    os.replace(fixed, path)
    return True


def _uids(path: Path) -> tuple[str, str]:
    """Best effort: the SOP Class and Instance UIDs of a refused part, so the client knows which."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return str(ds.get("SOPClassUID", "") or ""), str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # noqa: BLE001 - whatever the bytes are, the failure is reported without UIDs
        return "", ""


def _dicomweb_base(request: HttpRequest) -> str:
    path = request.path
    return request.build_absolute_uri(path[: path.rindex("/studies")])


def _element(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def _payload(base: str, study: str | None, stored: list[Stored], failed: list[Failed]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    studies = {s.study_instance_uid for s in stored}
    retrieve_study = study or (next(iter(studies)) if len(studies) == 1 else None)
    if retrieve_study:
        # PS3.18 10.5.3: RetrieveURL (0008,1190) of the study the instances were stored into.
        payload["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{retrieve_study}"]}
    if failed:
        items = []
        for f in failed:
            item: dict[str, Any] = {}
            if f.sop_class_uid:
                item["00081150"] = _element("UI", f.sop_class_uid)
            if f.sop_instance_uid:
                item["00081155"] = _element("UI", f.sop_instance_uid)
            item["00081197"] = _element("US", f.failure_reason)
            items.append(item)
        payload["00081198"] = {"vr": "SQ", "Value": items}
    if stored:
        payload["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _element("UI", s.sop_class_uid),
                    "00081155": _element("UI", s.sop_instance_uid),
                    "00081190": _element(
                        "UR",
                        f"{base}/studies/{s.study_instance_uid}/series/{s.series_instance_uid}"
                        f"/instances/{s.sop_instance_uid}",
                    ),
                }
                for s in stored
            ],
        }
    return payload


def _warning(f: Failed) -> str:
    # RFC 7234 5.5 warn-text is a quoted string; header values must be Latin-1, so escape the rest.
    text = f"{f.code}: {f.detail}".replace("\\", "\\\\").replace('"', '\\"')
    text = text.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")
    return f'299 vetpacs "{text}"'


def _audit(
    *,
    principal: Any,
    organisation_id: int,
    study: str | None,
    stored: list[Stored],
    failed: list[Failed],
    ip: str | None,
    status: int,
) -> None:
    # One event per request; ingest has already recorded each stored instance. Concurrent uploads share
    # its commit (audit.group_commit); the answer goes out only once it is written.
    studies = sorted({s.study_instance_uid for s in stored})
    group_commit.record_durably(
        "stow.completed",
        organisation_id=organisation_id,
        user_id=principal.user_id,
        actor=principal.label,
        ip=ip,
        target=f"study:{study}" if study else "studies",
        result="ok" if not failed else "partial" if stored else "failed",
        detail={
            "http_status": status,
            "stored": sum(not s.duplicate for s in stored),
            "duplicates": sum(s.duplicate for s in stored),
            "failed": len(failed),
            "studies": studies[:50],
            "failures": [{"part": f.part, "code": f.code, "sop": f.sop_instance_uid} for f in failed[:50]],
        },
    )
