"""Stream a multipart/related request body (RFC 2387) to temporary files, one per part, hashing as it goes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.utils.http import parse_header_parameters
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState

from vetpacs.core.errors import Errors, VetpacsError

# Large enough that the parser's per-call overhead is negligible, small enough to stay out of memory.
READ_CHUNK_BYTES = 1024 * 1024
# Part headers seen in the wild: Content-Type, Content-Length, Content-ID, Content-Location,
# Content-Transfer-Encoding, Content-Description; leave room without letting a body flood memory.
MAX_PART_HEADERS = 32
MAX_PART_HEADER_BYTES = 8 * 1024


@dataclass
class ReceivedPart:
    """One body part, written to disk: its headers, its SHA-256 and whether it ended properly."""

    index: int
    path: Path
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0
    sha256: str = ""
    complete: bool = False

    @property
    def media_type(self) -> str:
        value = self.headers.get("content-type", "")
        return parse_header_parameters(value)[0].lower() if value else ""


def media_type_and_params(content_type: str) -> tuple[str, dict[str, str]]:
    """`multipart/related; type="application/dicom"; boundary=x` -> ("multipart/related", {...})."""
    media_type, params = parse_header_parameters(content_type or "")
    return media_type.lower(), {k.lower(): v for k, v in params.items()}


class _Receiver:
    """Callbacks for python-multipart's low-level parser: each part's bytes go straight to a file."""

    def __init__(self, incoming_dir: Path) -> None:
        self.incoming_dir = incoming_dir
        self.finished: list[ReceivedPart] = []
        self.current: ReceivedPart | None = None
        self.count = 0
        self.ended = False
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        fd, name = tempfile.mkstemp(prefix="stow-", suffix=".part", dir=self.incoming_dir)
        self.count += 1
        self.current = ReceivedPart(index=self.count, path=Path(name))
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()

    def header_end(self) -> None:
        if self.current is not None:
            name = self._field.decode("latin-1").strip().lower()
            self.current.headers[name] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def headers_finished(self) -> None:
        pass

    def part_data(self, data: bytes, start: int, end: int) -> None:
        # A memoryview slice: the bytes are copied once, into the file, not into a new bytes object.
        view = memoryview(data)[start:end]
        assert self._file is not None and self.current is not None
        self._file.write(view)
        self._hash.update(view)
        self.current.size += end - start

    def part_end(self) -> None:
        part = self.current
        if part is None or self._file is None:
            return
        self._file.close()
        self._file = None
        part.sha256 = self._hash.hexdigest()
        part.complete = True
        self.finished.append(part)
        self.current = None

    def end(self) -> None:
        self.ended = True

    def abandon(self) -> ReceivedPart | None:
        """The body stopped inside a part: close its file and hand it back as incomplete."""
        part = self.current
        if self._file is not None:
            self._file.close()
            self._file = None
        self.current = None
        return part


def read_parts(
    stream: BinaryIO,
    *,
    boundary: str,
    incoming_dir: Path,
    max_bytes: int,
) -> Iterator[ReceivedPart]:
    """Yield each part of the body as soon as its closing boundary is read; delete its file after.

    A part cut short by the end of the body (or a dropped connection) is yielded with
    complete=False. Raises VetpacsError: BAD_REQUEST for a malformed body, PAYLOAD_TOO_LARGE past
    max_bytes. Temporary files are removed however the iteration ends.
    """
    incoming_dir.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(incoming_dir)
    parser = MultipartParser(
        boundary.encode("latin-1"),
        receiver.callbacks(),  # type: ignore[arg-type]
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    received = 0
    try:
        while not receiver.ended:
            try:
                chunk = stream.read(READ_CHUNK_BYTES)
            except OSError:
                chunk = b""  # the client went away: what arrived whole is still good
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise VetpacsError(
                    Errors.PAYLOAD_TOO_LARGE,
                    f"the request body is larger than the allowed {max_bytes} bytes",
                )
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise VetpacsError(
                    Errors.BAD_REQUEST, f"malformed multipart/related body near byte {received}: {exc}"
                ) from None
            yield from _drain(receiver)
        if received == 0:
            raise VetpacsError(Errors.BAD_REQUEST, "the request body is empty")
        if receiver.count == 0 and parser.state != MultipartState.END:
            raise VetpacsError(
                Errors.BAD_REQUEST,
                f"the body holds no part delimited by '--{boundary}' (is the boundary parameter right?)",
            )
        cut = receiver.abandon()
        if cut is not None:
            yield cut
            _remove(cut.path)
    finally:
        for part in receiver.finished:
            _remove(part.path)
        cut = receiver.abandon()
        if cut is not None:
            _remove(cut.path)


def _drain(receiver: _Receiver) -> Iterator[ReceivedPart]:
    while receiver.finished:
        part = receiver.finished[0]
        try:
            yield part
        finally:
            receiver.finished.pop(0)
            _remove(part.path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
