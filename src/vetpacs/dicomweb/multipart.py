"""multipart/related responses (RFC 2387, PS3.18 8.6.1.2) streamed part by part, and Accept parsing."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from django.http import StreamingHttpResponse

CRLF = b"\r\n"
# Parts are streamed in chunks of this size so a large instance never sits in memory whole; small
# pieces (part headers, a whole 250 KB image) are joined up to it, since every chunk handed to the
# server costs a write of its own.
STREAM_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: `type/subtype; param=value; q=0.9`."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def part_type(self) -> str | None:
        """The `type` parameter of multipart/related (the media type of each part), lower case."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges in preference order (RFC 9110 12.5.1); an empty header means `*/*`."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, item in enumerate(_split_outside_quotes(header or "", ",")):
        pieces = _split_outside_quotes(item, ";")
        media_type = pieces[0].strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"').strip()
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif name:
                params[name] = value
        if q > 0:
            ranges.append((-q, position, MediaRange(media_type, params, q)))
    if not ranges:
        return [MediaRange("*/*")]
    return [r for _, _, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


@dataclass
class Part:
    """One body part: its Content-Type and its bytes, given whole or as an iterator of chunks.

    `length` is the number of bytes an iterator body yields, when known before it runs.
    """

    content_type: str
    body: bytes | Iterable[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None

    def head(self, delimiter: bytes) -> bytes:
        lines = [delimiter, f"Content-Type: {self.content_type}".encode()]
        lines += [f"{k}: {v}".encode() for k, v in self.headers.items()]
        return CRLF.join(lines) + CRLF + CRLF

    @property
    def body_length(self) -> int | None:
        return len(self.body) if isinstance(self.body, bytes | bytearray) else self.length


def new_boundary() -> str:
    return "vetpacs-" + secrets.token_hex(16)


def _pieces(parts: Iterable[Part], delimiter: bytes) -> Generator[bytes, None, None]:
    for part in parts:
        yield part.head(delimiter)
        if isinstance(part.body, bytes | bytearray):
            yield part.body if isinstance(part.body, bytes) else bytes(part.body)
        else:
            try:
                for chunk in part.body:
                    if chunk:
                        yield chunk
            finally:
                # A client that hangs up mid-part must not leave the part's blob open.
                close = getattr(part.body, "close", None)
                if close is not None:
                    close()
        yield CRLF
    yield delimiter + b"--" + CRLF


def coalesce(pieces: Iterable[bytes], size: int = STREAM_CHUNK) -> Iterator[bytes]:
    """The same bytes with small pieces joined up to `size`; a piece of that size or more goes as is."""
    pending: list[bytes] = []
    held = 0
    for piece in pieces:
        if held + len(piece) <= size:
            pending.append(piece)
            held += len(piece)
            continue
        if pending:
            yield b"".join(pending)
        if len(piece) >= size:
            pending, held = [], 0
            yield piece
        else:
            pending, held = [piece], len(piece)
    if pending:
        yield b"".join(pending)


def stream_parts(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The multipart/related body, produced lazily, in chunks of up to STREAM_CHUNK."""
    pieces = _pieces(parts, b"--" + boundary.encode("ascii"))
    try:
        yield from coalesce(pieces)
    finally:
        pieces.close()


def body_length(parts: Sequence[Part], boundary: str) -> int | None:
    """The length of the whole multipart body, if every part's length is known before streaming."""
    delimiter = b"--" + boundary.encode("ascii")
    total = len(delimiter) + 2 + len(CRLF)
    for part in parts:
        length = part.body_length
        if length is None:
            return None
        total += len(part.head(delimiter)) + length + len(CRLF)
    return total


class ClosingBody:
    """Streaming content that runs clean-ups when Django closes the response (read or not)."""

    def __init__(self, chunks: Iterator[bytes], closers: Iterable[Callable[[], object]] = ()) -> None:
        self._chunks = chunks
        self._closers = list(closers)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        try:
            if close is not None:
                close()
        finally:
            for closer in self._closers:
                closer()


def multipart_response(
    parts: Iterable[Part],
    part_type: str,
    *,
    status: int = 200,
    on_close: Callable[[], object] | None = None,
) -> StreamingHttpResponse:
    """A streamed `multipart/related; type="<part_type>"` response (PS3.18 8.6.1.2).

    Given a list of parts whose lengths are all known, the response carries a Content-Length.
    """
    boundary = new_boundary()
    length = body_length(parts, boundary) if isinstance(parts, list | tuple) else None
    body = ClosingBody(stream_parts(parts, boundary), [on_close] if on_close else [])
    response = StreamingHttpResponse(
        body,
        status=status,
        content_type=f'multipart/related; type="{part_type}"; boundary={boundary}',
    )
    if length is not None:
        response["Content-Length"] = str(length)
    return response


def read_chunks(stream, size: int = STREAM_CHUNK) -> Iterator[bytes]:  # noqa: ANN001 - any binary file
    """Yield a binary stream's bytes chunk by chunk, closing it at the end (or when abandoned)."""
    try:
        while chunk := stream.read(size):
            yield chunk
    finally:
        stream.close()


def single_part_response(
    part: Part, pieces: Sequence[bytes | memoryview], part_type: str
) -> StreamingHttpResponse:
    """A multipart/related response of one part whose body is `pieces` (its own body is ignored),
    joined once: the same bytes multipart_response produces, without streaming machinery."""
    boundary = new_boundary()
    delimiter = b"--" + boundary.encode("ascii")
    body = b"".join([part.head(delimiter), *pieces, CRLF, delimiter, b"--", CRLF])
    response = StreamingHttpResponse(
        [body], content_type=f'multipart/related; type="{part_type}"; boundary={boundary}'
    )
    response["Content-Length"] = str(len(body))
    return response
