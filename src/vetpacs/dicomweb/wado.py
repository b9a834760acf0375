"""WADO-RS (PS3.18 10.4): retrieve instances, metadata, frames, bulk data, rendered, thumbnails, ZIP."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from vetpacs.apps.archive import blobs, queries
from vetpacs.apps.archive.models import Instance
from vetpacs.apps.audit import group_commit
from vetpacs.apps.identity import services as identity
from vetpacs.apps.watermark import services as watermark
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.dicom import codecs, render, splice
from vetpacs.dicom import frames as F
from vetpacs.dicom.attributes import BULK_PREFIX
from vetpacs.dicom.identity import restore_identity, restore_json
from vetpacs.dicom.parse import read_dataset
from vetpacs.dicomweb import ranges
from vetpacs.dicomweb.multipart import (
    MediaRange,
    Part,
    multipart_response,
    parse_accept,
    single_part_response,
)
from vetpacs.dicomweb.responses import DICOM_JSON

DICOM = "application/dicom"
ZIP = "application/zip"
ANY_SYNTAX = "*"
# PS3.18 8.7.3.5.2: without a transfer-syntax parameter, instances go out as Explicit VR Little Endian.
DEFAULT_SYNTAX = str(ExplicitVRLittleEndian)
# Syntaxes every stored instance can be decoded to exactly, whatever it is stored in.
NATIVE_TARGETS = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})
PIXEL_DATA = 0x7FE00010
PIXEL_DATA_TAGS = frozenset({PIXEL_DATA, 0x7FE00008, 0x7FE00009})
# An instance up to this size is read whole when its response starts: one piece for the server to
# write and a Content-Length known up front. Larger ones stream from the blob in STREAM_CHUNK pieces.
WHOLE_BODY_MAX = 8 * 1024 * 1024
# The bytes read to find a large file's header (most are a few KB; a longer one is read on to its end).
HEADER_GUESS = 64 * 1024
Body = bytes | Iterator[bytes]
METADATA_BATCH = 200
AVAILABLE_TRANSFER_SYNTAX = "00083002"


# --- lookups, always scoped to what the caller may see (another clinic's data is 404) ---------------


def _scoped(
    request: HttpRequest, study: str, series: str | None = None, instance: str | None = None
) -> QuerySet[Instance]:
    qs = queries.visible_instances(request.principal).filter(study__study_instance_uid=study)  # type: ignore[attr-defined]
    if series is not None:
        qs = qs.filter(series__series_instance_uid=series)
    if instance is not None:
        qs = qs.filter(sop_instance_uid=instance)
    return qs.order_by("series__series_number", "series_id", "instance_number", "id")


def _not_found(study: str, series: str | None, instance: str | None) -> VetpacsError:
    if instance is not None:
        what = f"instance {instance} of series {series} in study {study}"
    elif series is not None:
        what = f"series {series} in study {study}"
    else:
        what = f"study {study}"
    return VetpacsError(Errors.NOT_FOUND, f"{what} not found")


# What retrieval, frames, rendering and ZIP read of an instance row: compiling and loading only these
# (not the JSON metadata) is most of a single-instance lookup's cost.
_ROW_FIELDS = (
    "sop_instance_uid",
    "transfer_syntax_uid",
    "number_of_frames",
    "created_at",
    "version",
    "blob__key",
    "blob__size",
    "blob__sha256",
    "series__series_number",
    "series__modality",
    "study__organisation_id",
    "study__study_instance_uid",
)


def _instances(
    request: HttpRequest, study: str, series: str | None = None, instance: str | None = None
) -> list[Instance]:
    qs = _scoped(request, study, series, instance)
    if instance is not None:
        qs = qs.order_by()  # one row: sorting it costs the database nothing but the ORM a join
    rows = list(qs.select_related("blob", "series", "study").only(*_ROW_FIELDS))
    if not rows:
        raise _not_found(study, series, instance)
    return rows


def _originals(request: HttpRequest, instances: list[Instance]) -> dict[str, dict[str, Any]]:
    """The owner identity to put back, for callers of the owning clinic only."""
    principal = request.principal  # type: ignore[attr-defined]
    mine = [
        i.sop_instance_uid for i in instances if queries.may_see_identity(principal, i.study.organisation_id)
    ]
    return identity.originals_for_instances(mine) if mine else {}


def _audit(request: HttpRequest, action: str, row: Instance, **detail: Any) -> None:
    _audit_study(request, action, row.study.organisation_id, row.study.study_instance_uid, **detail)


def _audit_study(request: HttpRequest, action: str, organisation_id: int, study: str, **detail: Any) -> None:
    """A retrieval's event, committed before the response goes (shared with concurrent retrievals:
    apps/audit/group_commit.py); if it cannot be written the request fails instead. A HEAD request
    retrieves nothing (its answer has no body), so it writes no event."""
    if request.method == "HEAD":
        return
    principal = request.principal  # type: ignore[attr-defined]
    group_commit.record_durably(
        action,
        organisation_id=organisation_id,
        user_id=principal.user_id,
        actor=principal.label,
        ip=request.META.get("REMOTE_ADDR"),
        target=f"study:{study}",
        detail=detail,
    )


# --- transfer syntax negotiation (PS3.18 8.7.3) -------------------------------------------------------


def _dicom_accept(
    request: HttpRequest, *, allow_zip: bool = False, allow_single: bool = False
) -> tuple[str, list[str | None]]:
    """The response shape (multipart, single or zip) and the transfer syntaxes asked for, in order."""
    header = request.headers.get("Accept")
    mode: str | None = None
    wanted: list[str | None] = []
    for media in parse_accept(header):
        kind = _dicom_kind(media, allow_zip=allow_zip, allow_single=allow_single)
        if kind is None or (mode is not None and kind != mode):
            continue
        mode = kind
        wanted.append(media.transfer_syntax)
    if mode is None:
        raise VetpacsError(
            Errors.NOT_ACCEPTABLE,
            f'Accept {header!r} cannot be served: this resource is multipart/related; type="{DICOM}"',
        )
    return mode, wanted


def _dicom_kind(media: MediaRange, *, allow_zip: bool, allow_single: bool) -> str | None:
    if media.media_type in ("*/*", "multipart/*"):
        return "multipart"
    if media.media_type == "multipart/related" and media.part_type in (None, DICOM):
        return "multipart"
    if media.media_type == DICOM and allow_single:
        return "single"
    if media.media_type == ZIP and allow_zip:
        return "zip"
    return None


def _decodable(stored: str) -> bool:
    if not UID(stored).is_encapsulated:
        return True
    try:
        return get_decoder(stored).is_available
    except NotImplementedError:
        return False


def _choose_syntax(instance: Instance, wanted: list[str | None]) -> str:
    """The syntax this instance goes out in: stored bytes where allowed, an exact decoding otherwise."""
    return _syntax_for(instance.transfer_syntax_uid, instance.sop_instance_uid, wanted)


def _syntax_for(stored: str, sop_instance_uid: str, wanted: list[str | None]) -> str:
    lossy: str | None = None
    undecodable = False
    for requested in wanted or [None]:
        if requested == ANY_SYNTAX:
            return stored
        target = requested or DEFAULT_SYNTAX
        if target == stored:
            return stored
        if target in NATIVE_TARGETS:
            if _decodable(stored):
                return target
            undecodable = True
        elif UID(target).is_transfer_syntax and not codecs.is_lossless(target):
            lossy = lossy or target
    if lossy:
        # R-7.5c: an image is only ever served lossy when it was received (and is stored) that way.
        raise VetpacsError(
            Errors.LOSSY_REFUSED,
            f"transfer syntax {lossy} is lossy and instance {sop_instance_uid} is stored "
            f"as {stored}; images are never transcoded to a lossy syntax (R-7.5c)",
        )
    if undecodable:
        raise VetpacsError(
            Errors.CODEC_UNAVAILABLE,
            f"instance {sop_instance_uid} is stored as {stored}, which cannot be decoded here; "
            "ask for transfer-syntax=*",
        )
    asked = ", ".join(w or DEFAULT_SYNTAX for w in wanted)
    raise VetpacsError(
        Errors.NOT_ACCEPTABLE,
        f"instance {sop_instance_uid} is stored as {stored} and cannot be served as {asked}; "
        f"ask for transfer-syntax=* or {DEFAULT_SYNTAX}",
    )


def _decode_in_place(ds: Any, instance: Instance) -> None:
    """Decode to native pixels. Lossless by construction: every stored syntax decodes exactly."""
    if not UID(ds.file_meta.TransferSyntaxUID).is_encapsulated:
        return
    try:
        # The same instance in another encoding keeps its SOP Instance UID (PS3.5 8.2, PS3.18 8.7.3.5).
        ds.decompress(generate_instance_uid=False)
    except (NotImplementedError, RuntimeError, ImportError, ValueError) as exc:
        raise VetpacsError(
            Errors.CODEC_UNAVAILABLE,
            f"instance {instance.sop_instance_uid}: cannot decode {instance.transfer_syntax_uid}: {exc}",
        ) from None


# --- re-identification by splicing: rewrite the owner attributes, copy every other byte --------------
# Only the few owner elements are encoded anew (dicom.splice.write_changed); the rest of the stored file,
# pixel data included, goes out byte for byte. Little endian syntaxes only (splice.can_splice).


def _changes(originals: dict[str, Any]) -> dict[int, Any]:
    return {int(elem.tag): elem for elem in Dataset.from_json(originals)}


def _spliceable(syntax: str) -> bool:
    # Little endian and not deflated: bytes after a rewritten header stay valid (splice.can_splice).
    uid = UID(syntax)
    return syntax in NATIVE_TARGETS or (uid.is_transfer_syntax and uid.is_encapsulated)


def _identity_in_header(originals: dict[str, Any]) -> bool:
    # The spliced header ends where Pixel Data starts: an attribute to restore must sort before it.
    return all(int(tag, 16) < PIXEL_DATA for tag in originals)


def _rewritten(stream: BinaryIO, instance: Instance, target: str, originals: dict[str, Any] | None) -> bytes:
    """The whole file parsed and written again: to decode its pixels, or where splicing cannot work."""
    ds = read_dataset(stream, defer=False)
    if originals:
        restore_identity(ds, originals)
    if target != instance.transfer_syntax_uid:
        _decode_in_place(ds, instance)
        ds.file_meta.TransferSyntaxUID = UID(target)
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _split_stored(
    instance: Instance, data: bytes, originals: dict[str, Any] | None
) -> tuple[bytes, int] | None:
    """For a file sent in its stored syntax: (head, offset) such that the body is head + data[offset:]
    (head is the re-identified header; nothing when there is no identity to put back). None where the
    file has to be rewritten whole."""
    if not originals:
        return b"", 0
    if not (_identity_in_header(originals) and _spliceable(instance.transfer_syntax_uid)):
        return None
    # The owner attributes live in the header: encode only them anew and copy every other stored
    # byte, pixel data included, verbatim (microseconds instead of a whole rewrite).
    header = splice.read_header(io.BytesIO(data))
    out = io.BytesIO()
    splice.write_changed(header, _changes(originals), io.BytesIO(data), out)
    spliced = out.getbuffer()
    head_length = len(spliced) - (len(data) - header.pixel_offset)
    # What follows the header must be the stored bytes, unchanged: a cached head is sent with them.
    if head_length < 0 or spliced[head_length:] != memoryview(data)[header.pixel_offset :]:
        return None
    return bytes(spliced[:head_length]), header.pixel_offset


def _stored_version(instance: Instance) -> str:
    """What names the stored bytes of an instance, for the ETag of the files made from them."""
    return f"{instance.blob.sha256}:{instance.version}:{instance.transfer_syntax_uid}"


def _stored_file(instance: Instance, originals: dict[str, Any] | None) -> ranges.FileBody:
    """The instance as a Part 10 file in its stored syntax: a head (the re-identified header, or the
    whole file where it has to be rewritten), then the stored bytes from an offset. Small instances are
    read whole now; larger ones are read from the blob as they are sent. The pixel bytes go untouched
    wherever they can."""
    key, size, target = instance.blob.key, instance.blob.size, instance.transfer_syntax_uid
    content_type, version = f"{DICOM}; transfer-syntax={target}", _stored_version(instance)
    if size <= WHOLE_BODY_MAX:
        with blobs.store().open(key) as stream:
            data = stream.read()
        pieces = _split_stored(instance, data, originals)
        if pieces is not None:
            head, offset = pieces
            rest = memoryview(data)[offset:] if offset else data
            return ranges.FileBody(content_type, head, key, offset, len(data), version, rest)
        whole = _rewritten(io.BytesIO(data), instance, target, originals)
        return ranges.FileBody(content_type, whole, key, len(data), len(data), version, b"")
    if not originals:
        return ranges.FileBody(content_type, b"", key, 0, size, version)
    if _identity_in_header(originals) and _spliceable(target):
        # Too large to hold: the header is rewritten whole, the pixel bytes stream after it.
        header = _stored_header(key, size)
        restore_identity(header.ds, originals)
        head = splice.header_bytes(header.ds)
        return ranges.FileBody(content_type, head, key, header.pixel_offset, size, version)
    with blobs.store().open(key) as stream:
        data = stream.read()
    whole = _rewritten(io.BytesIO(data), instance, target, originals)
    return ranges.FileBody(content_type, whole, key, size, size, version, b"")


def _stored_header(key: str, size: int) -> splice.Header:
    """A large stored file's header, up to its Pixel Data: parsed from the file's first HEADER_GUESS
    bytes, read in one stretch (on S3 one bounded GET rather than a stream of the whole object cut off),
    or, where the header runs past them, from the blob read as far as the header goes."""
    prefix = blobs.store().open_range(key, 0, min(size, HEADER_GUESS))
    try:
        header = splice.read_header(io.BytesIO(prefix))
        if header.pixel_offset < len(prefix):  # it stopped at Pixel Data, not at the end of the bytes
            return header
    except VetpacsError:
        pass  # cut off inside an element: read on below
    with blobs.store().open(key) as stream:
        return splice.read_header(stream)


def _instance_body(instance: Instance, target: str, originals: dict[str, Any] | None) -> tuple[int, Body]:
    """The instance as a Part 10 file in `target`: its length, and its bytes (whole when small, else
    chunks read from the blob while they are sent)."""
    if target == instance.transfer_syntax_uid:
        stored = _stored_file(instance, originals)
        return stored.size, stored.whole()
    with blobs.store().open(instance.blob.key) as stream:
        data = stream.read()
    data = _rewritten(io.BytesIO(data), instance, target, originals)
    return len(data), data


def _instance_part(instance: Instance, target: str, originals: dict[str, Any] | None) -> Part:
    length, body = _instance_body(instance, target, originals)
    return Part(f"{DICOM}; transfer-syntax={target}", body, length=length)


def _instance_chunks(instance: Instance, target: str, originals: dict[str, Any] | None) -> Iterator[bytes]:
    """The instance's bytes, its file opened only when the stream reaches it (series, studies, ZIP)."""
    _, body = _instance_body(instance, target, originals)
    if isinstance(body, bytes):
        yield body
    else:
        yield from body


# --- repeat retrievals of one instance ---------------------------------------------------------------
# Viewers and exporters fetch the same instances again and again. What a retrieval works out besides
# the pixel bytes (the row and who may see it, the owner's decrypted identity, the re-identified header)
# is kept per process, keyed by the instance and the caller's organisations, and used only while the
# archive's generation is the one it was read at. Every committed change of the index (an instance
# stored again, re-encoded or deleted; identity kept, changed or crypto-shredded) bumps the generation,
# so an entry is never older than the last change; MAX_AGE bounds what a generation cannot see (a
# database restored under a running process). The stored bytes are read from the blob every time, and
# the retrieval is audited every time, exactly as without the cache.

PREPARED_MAX_ENTRIES = 4096
PREPARED_MAX_HEAD_BYTES = 64 * 1024  # a header larger than this is rebuilt each time
PREPARED_MAX_TOTAL_BYTES = 32 * 1024 * 1024  # all kept headers of one process together
PREPARED_MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class _Prepared:
    """An instance ready to go out in its stored syntax: `head`, then the blob's bytes from `offset`."""

    generation: int
    at: float
    organisation_id: int
    study: str
    series: str
    transfer_syntax: str
    blob_key: str
    blob_size: int
    head: bytes
    offset: int
    version: str  # the stored bytes' name (_stored_version), for the ETag of a single-part answer

    def pieces(self) -> list[bytes] | None:
        """The body in pieces; None if the blob is gone or not what it was (then the entry is not used)."""
        try:
            rest = blobs.store().open_range(self.blob_key, self.offset, self.blob_size)
        except (VetpacsError, OSError):
            return None  # the full path reads the blob again and reports what is wrong
        if len(rest) != self.blob_size - self.offset:
            return None
        return [self.head, rest] if self.head else [rest]

    def file(self, rest: bytes | None) -> ranges.FileBody:
        content_type = f"{DICOM}; transfer-syntax={self.transfer_syntax}"
        return ranges.FileBody(
            content_type, self.head, self.blob_key, self.offset, self.blob_size, self.version, rest
        )


_prepared: OrderedDict[tuple[str, frozenset[int]], _Prepared] = OrderedDict()
_prepared_lock = threading.Lock()
_prepared_bytes = 0


def clear_prepared() -> None:
    global _prepared_bytes  # noqa: PLW0603 - the cache's size, kept with it under its lock
    with _prepared_lock:
        _prepared.clear()
        _prepared_bytes = 0


def _remember(key: tuple[str, frozenset[int]], entry: _Prepared) -> None:
    global _prepared_bytes  # noqa: PLW0603
    if len(entry.head) > PREPARED_MAX_HEAD_BYTES:
        return
    with _prepared_lock:
        old = _prepared.pop(key, None)
        _prepared_bytes -= len(old.head) if old else 0
        _prepared[key] = entry
        _prepared_bytes += len(entry.head)
        while len(_prepared) > PREPARED_MAX_ENTRIES or _prepared_bytes > PREPARED_MAX_TOTAL_BYTES:
            _, dropped = _prepared.popitem(last=False)
            _prepared_bytes -= len(dropped.head)


def _prepared_key(request: HttpRequest, instance: str) -> tuple[str, frozenset[int]]:
    # Who may see the instance and its owner depends only on the caller's organisations.
    return instance, frozenset(request.principal.organisation_ids)  # type: ignore[attr-defined]


def _retrieve_prepared(
    request: HttpRequest,
    *,
    mode: str,
    wanted: list[str | None],
    study: str,
    series: str,
    instance: str,
    generation: int,
) -> HttpResponse | None:
    """The answer from a prepared instance, or None when there is none still valid (then the full path)."""
    key = _prepared_key(request, instance)
    with _prepared_lock:
        entry = _prepared.get(key)
    if (
        entry is None
        or entry.generation != generation
        or time.monotonic() - entry.at > PREPARED_MAX_AGE_SECONDS
        or entry.study != study
        or entry.series != series
    ):
        return None
    target = _syntax_for(entry.transfer_syntax, instance, wanted)  # a refusal is the same 406 as below
    if target != entry.transfer_syntax:
        return None
    response: HttpResponse
    ranged = entry.file(None)
    if mode == "single" and (request.method == "HEAD" or ranges.requested(request, ranged.etag) is not None):
        # One range: only its stretch of the blob is read (its first piece now, so a blob that is
        # gone or changed sends the request the full path's way). A HEAD reads none of it.
        try:
            response = ranges.respond(request, ranged)
        except (VetpacsError, OSError):
            return None
    else:
        pieces = entry.pieces()
        if pieces is None:
            return None
        if mode == "single":
            response = ranges.respond(request, entry.file(pieces[-1]))
        else:
            response = _multipart_instance(target, pieces)
    _audit_study(
        request,
        "study.retrieved",
        entry.organisation_id,
        study,
        level="instance",
        series=series,
        instance=instance,
        instances=1,
        **_range_detail(request, mode),
    )
    return response


def _range_detail(request: HttpRequest, mode: str) -> dict[str, str]:
    """The Range header of a single-part retrieval, for its audit event (a ranged read is a retrieval)."""
    header = request.headers.get("Range") if mode == "single" else None
    return {"range": header[:200]} if header else {}


def _multipart_instance(target: str, pieces: list[bytes]) -> HttpResponse:
    """One instance as multipart/related (a single-part file goes through ranges.respond)."""
    return single_part_response(Part(f"{DICOM}; transfer-syntax={target}", b""), pieces, DICOM)


def _retrieve(
    request: HttpRequest,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> HttpResponse:
    mode, wanted = _dicom_accept(request, allow_zip=series is None, allow_single=instance is not None)
    if mode == "zip":
        return retrieve_study_zip(request, study)
    generation = None
    if instance is not None and series is not None:
        # Read before the rows: a change committed in between makes what is built below look stale.
        generation = queries.current_generation()
        answer = _retrieve_prepared(
            request,
            mode=mode,
            wanted=wanted,
            study=study,
            series=series,
            instance=instance,
            generation=generation,
        )
        if answer is not None:
            return answer
    rows = _instances(request, study, series, instance)
    # Decide every instance's syntax before the first byte goes out, so a refusal is a clean 406.
    targets = [_choose_syntax(row, wanted) for row in rows]
    originals = _originals(request, rows)
    level = "instance" if instance else "series" if series else "study"
    as_stored = len(rows) == 1 and targets[0] == rows[0].transfer_syntax_uid
    _audit(
        request,
        "study.retrieved",
        rows[0],
        level=level,
        series=series,
        instance=instance,
        instances=len(rows),
        **(_range_detail(request, mode) if as_stored else {}),
    )
    if len(rows) == 1:
        # One instance (the common request of viewers and exporters): prepared now, so a damaged
        # file is an error status rather than a cut stream, and the response has a Content-Length.
        row, target = rows[0], targets[0]
        own = originals.get(row.sop_instance_uid)
        if (
            generation is not None
            and series is not None
            and instance is not None
            and target == row.transfer_syntax_uid
            and row.blob.size <= WHOLE_BODY_MAX
        ):
            with blobs.store().open(row.blob.key) as stream:
                data = stream.read()
            split = _split_stored(row, data, own)
            if split is not None:
                head, offset = split
                _remember(
                    _prepared_key(request, instance),
                    _Prepared(
                        generation=generation,
                        at=time.monotonic(),
                        organisation_id=row.study.organisation_id,
                        study=study,
                        series=series,
                        transfer_syntax=target,
                        blob_key=row.blob.key,
                        blob_size=len(data),
                        head=head,
                        offset=offset,
                        version=_stored_version(row),
                    ),
                )
                rest = memoryview(data)[offset:] if offset else data
                if mode == "single":
                    content_type = f"{DICOM}; transfer-syntax={target}"
                    file = ranges.FileBody(
                        content_type, head, row.blob.key, offset, len(data), _stored_version(row), rest
                    )
                    return ranges.respond(request, file)
                return _multipart_instance(target, [head, rest] if head else [rest])  # type: ignore[list-item]
        if mode == "single" and target == row.transfer_syntax_uid:
            # RFC 9110 Range requests on the file as stored (a transcoded answer is sent whole).
            return ranges.respond(request, _stored_file(row, own))
        part = _instance_part(row, target, own)
        if mode == "single":
            response = StreamingHttpResponse(
                [part.body] if isinstance(part.body, bytes) else part.body, content_type=part.content_type
            )
            response["Content-Length"] = str(part.length)
            return response
        return multipart_response([part], DICOM)
    parts = (
        Part(
            f"{DICOM}; transfer-syntax={target}",
            _instance_chunks(row, target, originals.get(row.sop_instance_uid)),
        )
        for row, target in zip(rows, targets, strict=True)
    )
    return multipart_response(parts, DICOM)


def retrieve_study(request: HttpRequest, study: str) -> HttpResponse:
    return _retrieve(request, study)


def retrieve_series(request: HttpRequest, study: str, series: str) -> HttpResponse:
    return _retrieve(request, study, series)


def retrieve_instance(request: HttpRequest, study: str, series: str, instance: str) -> HttpResponse:
    return _retrieve(request, study, series, instance)


# --- ZIP of a whole study ----------------------------------------------------------------------------


class _Sink:
    """A write-only file for zipfile that hands over what was written, so the archive streams."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _zip_name(instance: Instance) -> str:
    series = instance.series
    folder = f"S{series.series_number or 0:03d}_{series.modality or 'OT'}"
    return f"{folder}/{instance.sop_instance_uid}.dcm"


def _zip_stream(rows: list[Instance], originals: dict[str, dict[str, Any]]) -> Iterator[bytes]:
    sink = _Sink()
    # Deflate with data descriptors is what every unzip tool reads from a stream; level 1 keeps it fast.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
        for row in rows:
            info = zipfile.ZipInfo(_zip_name(row), date_time=row.created_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as entry:
                for chunk in _instance_chunks(
                    row, row.transfer_syntax_uid, originals.get(row.sop_instance_uid)
                ):
                    entry.write(chunk)
                    if out := sink.take():
                        yield out
            if out := sink.take():
                yield out
    yield sink.take()


def retrieve_study_zip(request: HttpRequest, study: str) -> HttpResponse:
    rows = _instances(request, study)
    originals = _originals(request, rows)
    _audit(request, "study.downloaded", rows[0], format="zip", instances=len(rows))
    response = StreamingHttpResponse(_zip_stream(rows, originals), content_type=ZIP)
    response["Content-Disposition"] = f'attachment; filename="study-{study}.zip"'
    return response


# --- metadata (PS3.18 10.4.1.2) -----------------------------------------------------------------------


def _root_url(request: HttpRequest) -> str:
    path = request.path
    return request.build_absolute_uri(path[: path.index("/studies/")])


def _with_bulk_urls(element_map: dict[str, Any], instance_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, element in element_map.items():
        uri = element.get("BulkDataURI") if isinstance(element, dict) else None
        if isinstance(uri, str) and uri.startswith(BULK_PREFIX):
            # PS3.18 8.6.2: BulkDataURI is an absolute URL of the bulkdata resource; Pixel Data's
            # answers one part per frame, as the frames resource does.
            out[tag] = {**element, "BulkDataURI": f"{instance_url}/bulkdata/{uri[len(BULK_PREFIX) :]}"}
        elif isinstance(element, dict) and element.get("vr") == "SQ" and element.get("Value"):
            items = [_with_bulk_urls(item, instance_url) for item in element["Value"]]
            out[tag] = {**element, "Value": items}
        else:
            out[tag] = element
    return out


def _metadata_stream(request: HttpRequest, qs: QuerySet[Instance], show_identity: bool) -> Iterator[bytes]:
    import json

    root = _root_url(request)
    rows = qs.values_list(
        "sop_instance_uid",
        "series__series_instance_uid",
        "study__study_instance_uid",
        "transfer_syntax_uid",
        "metadata",
    )
    yield b"["
    first = True
    batch: list[tuple[Any, ...]] = []

    def flush(batch: list[tuple[Any, ...]]) -> Iterable[bytes]:
        nonlocal first
        originals = identity.originals_for_instances([r[0] for r in batch]) if show_identity else {}
        for sop, series_uid, study_uid, ts, metadata in batch:
            url = f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop}"
            item = _with_bulk_urls(restore_json(metadata or {}, originals.get(sop, {})), url)
            # PS3.18 10.6.3.3.3 / OHIF: the syntax the instance is available in, for the viewer's decoder.
            item.setdefault(AVAILABLE_TRANSFER_SYNTAX, {"vr": "UI", "Value": [ts]})
            body = json.dumps(dict(sorted(item.items())), ensure_ascii=False, separators=(",", ":"))
            yield (b"" if first else b",") + body.encode("utf-8")
            first = False

    for row in rows.iterator(chunk_size=METADATA_BATCH):
        batch.append(row)
        if len(batch) >= METADATA_BATCH:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)
    yield b"]"


def _metadata(
    request: HttpRequest, study: str, series: str | None = None, instance: str | None = None
) -> HttpResponse:
    accepted = parse_accept(request.headers.get("Accept"))
    if not any(m.media_type in ("*/*", "application/*", DICOM_JSON, "application/json") for m in accepted):
        raise VetpacsError(Errors.NOT_ACCEPTABLE, f"metadata is served as {DICOM_JSON} only")
    qs = _scoped(request, study, series, instance)
    head = qs.select_related("study").defer("metadata", "study__dicom_json").first()
    if head is None:
        raise _not_found(study, series, instance)
    show_identity = queries.may_see_identity(request.principal, head.study.organisation_id)  # type: ignore[attr-defined]
    if instance is None:
        # Viewing is audited where a viewer starts (study or series metadata), not per frame or image.
        _audit(request, "study.viewed", head, level="series" if series else "study", series=series)
    return StreamingHttpResponse(
        _metadata_stream(request, qs, show_identity), content_type=f"{DICOM_JSON}; charset=utf-8"
    )


def retrieve_study_metadata(request: HttpRequest, study: str) -> HttpResponse:
    return _metadata(request, study)


def retrieve_series_metadata(request: HttpRequest, study: str, series: str) -> HttpResponse:
    return _metadata(request, study, series)


def retrieve_instance_metadata(request: HttpRequest, study: str, series: str, instance: str) -> HttpResponse:
    return _metadata(request, study, series, instance)


# --- frames and bulk data (PS3.18 10.4.1.1.4, 10.4.1.1.5) ---------------------------------------------


def _frame_numbers(text: str, instance: Instance) -> list[int]:
    numbers: list[int] = []
    for piece in text.split(","):
        try:
            number = int(piece.strip())
        except ValueError:
            raise VetpacsError(
                Errors.BAD_REQUEST, f"frame list {text!r}: {piece!r} is not a frame number"
            ) from None
        if number < 1:
            raise VetpacsError(Errors.BAD_REQUEST, f"frame numbers start at 1, not {number}")
        numbers.append(number)
    available = instance.number_of_frames or 1
    for number in numbers:
        if number > available:
            raise _no_such_frame(number, instance, available)
    return numbers


def _no_such_frame(number: int, instance: Instance, available: int) -> VetpacsError:
    return VetpacsError(
        Errors.NOT_FOUND,
        f"frame {number} does not exist: instance {instance.sop_instance_uid} has {available} frame(s)",
    )


def _frames_mode(request: HttpRequest, stored: str) -> tuple[bool, str]:
    """(serve stored bytes?, part media type) for a frames or pixel bulk data request."""
    stored_media = F.media_type_of(stored)
    lossy: str | None = None
    for media in parse_accept(request.headers.get("Accept")):
        # dicomweb-client asks `multipart/related; type="*/*"` by default: any part type will do.
        if media.media_type in ("*/*", "multipart/*") or (
            media.media_type == "multipart/related" and media.part_type in (None, "*/*")
        ):
            if media.transfer_syntax == ANY_SYNTAX:
                return True, stored_media
            return False, F.OCTET_STREAM
        if media.media_type != "multipart/related":
            continue
        part, ts = media.part_type, media.transfer_syntax
        if ts == ANY_SYNTAX:
            # OHIF asks `type=application/octet-stream; transfer-syntax=*` and reads each part's type.
            return True, stored_media
        if part == F.OCTET_STREAM:
            if ts in (None, *NATIVE_TARGETS) or (ts == stored and stored_media == F.OCTET_STREAM):
                return False, F.OCTET_STREAM
            if ts and UID(ts).is_transfer_syntax and not codecs.is_lossless(ts):
                lossy = lossy or ts
            continue
        syntaxes = next((v for k, v in F.MEDIA_TYPE_SYNTAXES.items() if k.lower() == part), None)
        if syntaxes is None:
            continue
        if ts is None and stored in syntaxes or ts == stored:
            return True, stored_media
        target = ts or syntaxes[0]
        if target in syntaxes and not codecs.is_lossless(target):
            lossy = lossy or target
    if lossy:
        raise VetpacsError(
            Errors.LOSSY_REFUSED,
            f"frames stored as {stored} are never transcoded to the lossy syntax {lossy} (R-7.5c)",
        )
    raise VetpacsError(
        Errors.NOT_ACCEPTABLE,
        f"frames are stored as {stored_media} ({stored}); ask for "
        f'multipart/related; type="{F.OCTET_STREAM}" or transfer-syntax=*',
    )


def _one_instance(request: HttpRequest, study: str, series: str, instance: str) -> Instance:
    return _instances(request, study, series, instance)[0]


def _frames_response(request: HttpRequest, row: Instance, numbers: list[int] | None) -> HttpResponse:
    stored_bytes, media = _frames_mode(request, row.transfer_syntax_uid)
    read = F.stored_frame if stored_bytes else F.native_frame
    with blobs.store().open(row.blob.key) as stream:
        src = F.open_pixels(stream)
        indices = [n - 1 for n in numbers] if numbers else list(range(src.number_of_frames))
        for index in indices:
            if index >= src.number_of_frames:
                raise _no_such_frame(index + 1, row, src.number_of_frames)
        # The first frame (usually the only one) is read now, so a decoding problem is an error
        # status rather than a cut stream, and no file stays open on a response nobody reads.
        first = read(src, indices[0])
    syntax = row.transfer_syntax_uid if stored_bytes and media != F.OCTET_STREAM else DEFAULT_SYNTAX
    content_type = f"{media}; transfer-syntax={syntax}"

    def parts() -> Iterator[Part]:
        yield Part(content_type, first)
        if len(indices) > 1:
            with blobs.store().open(row.blob.key) as rest:
                more = F.open_pixels(rest)
                for index in indices[1:]:
                    yield Part(content_type, read(more, index))

    return multipart_response(parts(), media)


def retrieve_instance_frames(
    request: HttpRequest, study: str, series: str, instance: str, frames: str
) -> HttpResponse:
    row = _one_instance(request, study, series, instance)
    return _frames_response(request, row, _frame_numbers(frames, row))


def _element_bytes(row: Instance, tag: int) -> bytes:
    with blobs.store().open(row.blob.key) as stream:
        ds = read_dataset(stream, defer=False)
    if tag not in ds:
        raise VetpacsError(
            Errors.NOT_FOUND,
            f"instance {row.sop_instance_uid} has no element ({tag >> 16:04X},{tag & 0xFFFF:04X})",
        )
    # PS3.18 8.7.3.3: bulk data is the value alone, little endian; an implicit VR header is 8 bytes.
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_data_element(buf, ds[tag])
    return buf.getvalue()[8:]


def retrieve_bulkdata(request: HttpRequest, study: str, series: str, instance: str, tag: str) -> HttpResponse:
    try:
        number = int(Tag(int(tag, 16)))
    except ValueError:
        raise VetpacsError(Errors.BAD_REQUEST, f"bulk data tag {tag!r} is not 8 hexadecimal digits") from None
    row = _one_instance(request, study, series, instance)
    if number in PIXEL_DATA_TAGS:
        return _frames_response(request, row, None)
    accepted = parse_accept(request.headers.get("Accept"))
    if not any(
        m.media_type in ("*/*", "multipart/*")
        or (m.media_type == "multipart/related" and m.part_type in (None, F.OCTET_STREAM))
        for m in accepted
    ):
        raise VetpacsError(
            Errors.NOT_ACCEPTABLE, f'bulk data is served as multipart/related; type="{F.OCTET_STREAM}"'
        )
    return multipart_response([Part(F.OCTET_STREAM, _element_bytes(row, number))], F.OCTET_STREAM)


# --- rendered and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.6) ------------------------------------------


def _rendered_media_type(request: HttpRequest) -> str:
    for media in parse_accept(request.headers.get("Accept")):
        if media.media_type in render.MEDIA_TYPES:
            return media.media_type
        if media.media_type in ("*/*", "image/*"):
            return render.JPEG
    raise VetpacsError(Errors.NOT_ACCEPTABLE, f"rendered images are served as {render.JPEG} or {render.PNG}")


def _rendered(request: HttpRequest, row: Instance, frame: int, *, thumbnail: bool) -> HttpResponse:
    media = _rendered_media_type(request)
    params = request.GET
    window = render.parse_window(params["window"]) if params.get("window") else None
    viewport = render.parse_viewport(params["viewport"]) if params.get("viewport") else None
    quality = render.parse_quality(params["quality"]) if params.get("quality") else None
    with blobs.store().open(row.blob.key) as stream:
        src = F.open_pixels(stream)
        if frame > src.number_of_frames:
            raise _no_such_frame(frame, row, src.number_of_frames)
        arr = F.decode_frame(src, frame - 1)
    body = render.render(
        arr,
        src.header,
        media_type=media,
        window=window,
        viewport=viewport,
        quality=quality,
        max_size=render.THUMBNAIL_SIZE if thumbnail else None,
    )
    body = watermark.mark_rendered(request, row, body, media)  # R-7.3.4.3b: a browser user's picture
    response = HttpResponse(body, content_type=media)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _representative(request: HttpRequest, study: str, series: str | None, *, middle: bool) -> Instance:
    """The image that stands for a study or series: its first (or middle) image of the first series."""
    qs = _scoped(request, study, series).filter(rows__isnull=False).select_related("blob", "study")
    first = qs.first()
    if first is None:
        if not _scoped(request, study, series).exists():
            raise _not_found(study, series, None)
        what = f"series {series}" if series else f"study {study}"
        raise VetpacsError(Errors.NOT_FOUND, f"{what} has no images to render")
    if not middle:
        return first
    same_series = qs.filter(series_id=first.series_id)
    count = same_series.count()
    return same_series[count // 2]


def retrieve_instance_rendered(request: HttpRequest, study: str, series: str, instance: str) -> HttpResponse:
    return _rendered(request, _one_instance(request, study, series, instance), 1, thumbnail=False)


def retrieve_frames_rendered(
    request: HttpRequest, study: str, series: str, instance: str, frames: str
) -> HttpResponse:
    row = _one_instance(request, study, series, instance)
    numbers = _frame_numbers(frames, row)
    if len(numbers) != 1:
        raise VetpacsError(Errors.BAD_REQUEST, "a rendered frame request names exactly one frame")
    return _rendered(request, row, numbers[0], thumbnail=False)


def retrieve_series_rendered(request: HttpRequest, study: str, series: str) -> HttpResponse:
    return _rendered(request, _representative(request, study, series, middle=False), 1, thumbnail=False)


def retrieve_study_rendered(request: HttpRequest, study: str) -> HttpResponse:
    return _rendered(request, _representative(request, study, None, middle=False), 1, thumbnail=False)


def retrieve_instance_thumbnail(request: HttpRequest, study: str, series: str, instance: str) -> HttpResponse:
    return _rendered(request, _one_instance(request, study, series, instance), 1, thumbnail=True)


def retrieve_series_thumbnail(request: HttpRequest, study: str, series: str) -> HttpResponse:
    return _rendered(request, _representative(request, study, series, middle=True), 1, thumbnail=True)


def retrieve_study_thumbnail(request: HttpRequest, study: str) -> HttpResponse:
    return _rendered(request, _representative(request, study, None, middle=True), 1, thumbnail=True)
