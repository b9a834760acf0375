"""Range requests (RFC 9110 14) on a single-part file: a header of its own, then a blob from an offset.

A retrieved instance in its stored syntax is `head` (the re-identified header, or nothing) followed by
the stored bytes from `offset` on. One byte range of it is read from `head` and from the blob at the
matching offsets, never by building the whole file; a range the file cannot satisfy is 416; several
ranges in one request get the whole file (RFC 9110 14.2 allows it).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from vetpacs.apps.archive import blobs
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.dicomweb.multipart import STREAM_CHUNK

# RFC 9110 14.1.1: `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (whitespace around the
# comma-separated specs allowed; the unit is case-insensitive).
_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(Exception):  # noqa: N818 - RFC 9110's name for the 416 case
    """The range asks for no byte the file has."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of the one byte range `header` asks for; None to send the whole file (a header
    that is not a byte range, is malformed or names several ranges). Raises Unsatisfiable."""
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    pieces = [p for p in specs.split(",") if p.strip()]
    if len(pieces) != 1:
        return None
    match = _SPEC.match(pieces[0])
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid (RFC 9110 14.1.1): ignored, the whole file goes out
    if start >= size:
        raise Unsatisfiable
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def etag_of(*validators: str | int | bytes) -> str:
    """A strong ETag from what decides the served bytes (blob digest, version, header bytes...)."""
    h = hashlib.sha256()
    for value in validators:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return f'"{h.hexdigest()[:40]}"'


@dataclass(frozen=True)
class FileBody:
    """A file as it goes out: `head`, then bytes [offset, blob_size) of blob `key`. `rest`, when given,
    is that stretch of the blob already read (then nothing is read again). `version` names the stored
    bytes (their SHA-256, the instance version): with the head and offset it makes the strong ETag."""

    content_type: str
    head: bytes
    key: str
    offset: int
    blob_size: int
    version: str
    rest: bytes | memoryview | None = None

    @property
    def size(self) -> int:
        return len(self.head) + self.blob_size - self.offset

    @functools.cached_property
    def etag(self) -> str:
        return etag_of(self.version, self.offset, self.blob_size, self.head)

    def whole(self) -> bytes | Iterator[bytes]:
        """Every byte: joined when the blob's part is already read, else streamed from the blob."""
        if self.rest is not None:
            if not self.head and isinstance(self.rest, bytes):
                return self.rest
            return self.head + self.rest
        if self.offset >= self.blob_size:
            return self.head
        return _blob_chunks(self.key, self.offset, self.blob_size, self.head)

    def slice(self, start: int, end: int) -> bytes | Iterator[bytes]:
        """Bytes [start, end) of the file: from the head, then only that stretch of the blob."""
        from_head = self.head[start:end]
        blob_start = self.offset + max(0, start - len(self.head))
        blob_end = self.offset + max(0, end - len(self.head))
        if blob_end <= blob_start:
            return from_head
        if self.rest is not None:
            return from_head + self.rest[blob_start - self.offset : blob_end - self.offset]
        return _blob_chunks(self.key, blob_start, blob_end, from_head)


def _blob_chunks(key: str, start: int, end: int, head: bytes) -> Iterator[bytes]:
    """`head`, then blob bytes [start, end) in STREAM_CHUNK pieces. The first piece is read now, so a
    missing blob is an error status rather than a cut stream; the rest as the answer is sent."""
    first = blobs.store().open_range(key, start, min(end, start + STREAM_CHUNK))
    if not first:
        raise _short(key, start, end)
    return _rest(key, head + first, start + len(first), end)


def _rest(key: str, first: bytes, position: int, end: int) -> Iterator[bytes]:
    yield first
    if position >= end:
        return
    with blobs.store().open(key, start=position) as stream:
        while position < end:
            chunk = stream.read(min(STREAM_CHUNK, end - position))
            if not chunk:
                raise _short(key, position, end)
            position += len(chunk)
            yield chunk


def _short(key: str, position: int, end: int) -> VetpacsError:
    return VetpacsError(Errors.STORAGE_FAILED, f"blob {key} ended at byte {position}, short of {end}")


def _response(status: int, content_type: str, body: bytes | Iterator[bytes], length: int) -> HttpResponse:
    response = StreamingHttpResponse([body] if isinstance(body, bytes) else body, content_type=content_type)
    response.status_code = status
    response["Content-Length"] = str(length)
    return response


def requested(request: HttpRequest, etag: str) -> str | None:
    """The Range header to honour: None when there is none, or when If-Range names another version
    (RFC 9110 13.1.5: a strong ETag compared exactly; a date never matches, there is no Last-Modified)."""
    header: str | None = request.headers.get("Range")
    if not header or request.method != "GET":
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    return header


def respond(request: HttpRequest, body: FileBody) -> HttpResponse:
    """200 with the whole file, 206 with the one range asked for, or 416; each says it takes ranges."""
    size = body.size
    header = requested(request, body.etag)
    span = None
    if header is not None:
        try:
            span = parse_range(header, size)
        except Unsatisfiable:
            response = HttpResponse(status=416, content_type="text/plain; charset=utf-8")
            response.content = f"range {header!r} is outside the file's {size} bytes\n".encode()
            response["Content-Range"] = f"bytes */{size}"
            response["Accept-Ranges"] = "bytes"
            response["ETag"] = body.etag
            return response
    if request.method == "HEAD":
        response = HttpResponse(status=200, content_type=body.content_type)  # nothing of the blob read
        response["Content-Length"] = str(size)
    elif span is None:
        response = _response(200, body.content_type, body.whole(), size)
    else:
        start, end = span
        response = _response(206, body.content_type, body.slice(start, end), end - start)
        response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = body.etag
    return response
