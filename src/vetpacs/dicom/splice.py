"""Change a DICOM file's header without touching its pixel bytes: parse up to Pixel Data, rewrite that
part, copy the rest verbatim. Pseudonymising on ingest and re-identifying on export cost a few KB of
work instead of re-serialising a whole image.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom import dcmread, dcmwrite
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import UID

from vetpacs.core.errors import Errors, VetpacsError

COPY_CHUNK = 256 * 1024
# Syntaxes whose header can be rewritten on its own: every element is little endian and not
# deflated, so the bytes from Pixel Data on stay valid after a new header.
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass
class Header:
    """The dataset up to (not including) Pixel Data, and where Pixel Data starts in the file.

    spans: where each top-level element of the dataset lies in the file, [start, end), as read (end
    is None for undefined lengths). It lets write_changed patch a few elements without re-encoding.
    """

    ds: Dataset
    pixel_offset: int
    spans: dict[int, tuple[int, int | None]] = field(default_factory=dict)


def read_header(stream: BinaryIO) -> Header:
    """Parse up to Pixel Data; the stream is left positioned at the Pixel Data element (or the end)."""
    try:
        ds = dcmread(stream, stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise VetpacsError(Errors.NOT_DICOM, f"not a DICOM Part 10 file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise VetpacsError(Errors.NOT_DICOM, f"the DICOM file cannot be parsed: {exc}") from None
    if "TransferSyntaxUID" not in ds.file_meta:
        raise VetpacsError(Errors.MISSING_ATTRIBUTE, "file meta has no Transfer Syntax UID (0002,0010)")
    return Header(ds=ds, pixel_offset=stream.tell(), spans=_spans(ds))


def _spans(ds: Dataset) -> dict[int, tuple[int, int | None]]:
    """Byte spans of the elements pydicom has not converted yet (it keeps where their value lies)."""
    spans: dict[int, tuple[int, int | None]] = {}
    for tag, elem in ds._dict.items():  # noqa: SLF001 - the raw elements carry their file offsets
        tell = getattr(elem, "value_tell", None)
        if tell is None:
            continue
        head = 8 if elem.is_implicit_VR or elem.VR not in _LONG_VRS else 12
        end = None if elem.length == UNDEFINED_LENGTH else tell + elem.length
        spans[int(tag)] = (tell - head, end)
    return spans


def can_splice(ds: Dataset) -> bool:
    ts = UID(ds.file_meta.get("TransferSyntaxUID", ""))
    return ts in (_IMPLICIT_LE, _EXPLICIT_LE) or (ts.is_transfer_syntax and ts.is_encapsulated)


def header_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def write_spliced(header: Header, source: BinaryIO, out: BinaryIO) -> None:
    """The header (as changed in header.ds) followed by source's bytes from Pixel Data on."""
    out.write(header_bytes(header.ds))
    source.seek(header.pixel_offset)
    shutil.copyfileobj(source, out, COPY_CHUNK)


def iter_spliced(header: Header, source: BinaryIO) -> Iterator[bytes]:
    """The same as write_spliced, as chunks for a streamed response."""
    yield header_bytes(header.ds)
    source.seek(header.pixel_offset)
    while chunk := source.read(COPY_CHUNK):
        yield chunk


# PS3.5 7.1.2: explicit VRs whose length field is 4 bytes after 2 reserved bytes.
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class PixelElement:
    tag: int
    vr: str
    length: int  # UNDEFINED_LENGTH for encapsulated pixel data


def pixel_element(stream: BinaryIO, header: Header) -> PixelElement | None:
    """The tag, VR and value length of the pixel data element at header.pixel_offset, if any."""
    stream.seek(header.pixel_offset)
    raw = stream.read(12)
    if len(raw) < 8:
        return None
    tag = (int.from_bytes(raw[0:2], "little") << 16) | int.from_bytes(raw[2:4], "little")
    if header.ds.file_meta.TransferSyntaxUID == _IMPLICIT_LE:
        return PixelElement(
            tag,
            "OB" if int(header.ds.get("BitsAllocated") or 16) <= 8 else "OW",
            int.from_bytes(raw[4:8], "little"),
        )
    vr = raw[4:6].decode("ascii", "replace")
    if vr in _LONG_VRS:
        if len(raw) < 12:
            return None
        return PixelElement(tag, vr, int.from_bytes(raw[8:12], "little"))
    return PixelElement(tag, vr, int.from_bytes(raw[6:8], "little"))


def write_changed(
    header: Header, changes: dict[int, DataElement | None], source: BinaryIO, out: BinaryIO
) -> None:
    """The file with the given top-level elements replaced, added or (None) removed.

    Patches the bytes of just those elements when their places are known; otherwise applies the
    changes to header.ds and writes the whole header anew. Either way the pixel bytes are copied.
    """
    patches = _patches(header, changes)
    if patches is None:
        for tag, elem in changes.items():
            if elem is None:
                header.ds.pop(tag, None)
            else:
                header.ds[tag] = elem
        write_spliced(header, source, out)
        return
    source.seek(0)
    position = 0
    for start, end, data in patches:
        out.write(source.read(start - position))
        out.write(data)
        source.seek(end)
        position = end
    out.write(source.read(header.pixel_offset - position))
    shutil.copyfileobj(source, out, COPY_CHUNK)


def _patches(header: Header, changes: dict[int, DataElement | None]) -> list[tuple[int, int, bytes]] | None:
    """(start, end, new bytes) for each change, in file order; None when any place is unknown."""
    ds = header.ds
    ts = ds.file_meta.TransferSyntaxUID
    if (
        not changes
        or any((tag & 0xFFFF) == 0 for tag in ds.keys())
        or ts not in (_IMPLICIT_LE, _EXPLICIT_LE)
        and not UID(ts).is_encapsulated
    ):
        return None  # group lengths would go stale; other syntaxes are not patched
    encodings = convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")
    ordered = sorted(int(t) for t in ds.keys())
    patches = []
    for tag, elem in sorted(changes.items()):
        if tag in header.spans:
            start, end = header.spans[tag]
            if end is None:
                return None
        elif tag in ds:
            return None  # present but converted already: its place is unknown
        else:
            after = next((t for t in ordered if t > tag), None)
            if after is None:
                start = end = header.pixel_offset
            elif after in header.spans:
                start = end = header.spans[after][0]
            else:
                return None
        patches.append((start, end, b"" if elem is None else _encode(elem, ts == _IMPLICIT_LE, encodings)))
    return patches


def _encode(elem: DataElement, implicit: bool, encodings: list[str]) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, implicit
    write_data_element(buf, elem, encodings)
    return buf.getvalue()


class _Pieces(io.RawIOBase):
    """A read-only stream over byte strings and ranges of a source file, read in order."""

    def __init__(self, pieces: list[bytes | tuple[int, int | None]], source: BinaryIO) -> None:
        self._pieces = pieces
        self._source = source
        self._current: bytes | tuple[int, int | None] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        while self._pieces or self._current is not None:
            if self._current is None:
                self._current = self._pieces.pop(0)
                if isinstance(self._current, tuple):
                    self._source.seek(self._current[0])
            if isinstance(self._current, bytes):
                n = min(len(view), len(self._current))
                view[:n] = self._current[:n]
                self._current = self._current[n:] or None
                if n:
                    return n
                continue
            start, end = self._current
            want = len(view) if end is None else min(len(view), end - self._source.tell())
            data = self._source.read(want) if want > 0 else b""
            if not data:
                self._current = None
                continue
            view[: len(data)] = data
            return len(data)
        return 0


def changed_stream(header: Header, changes: dict[int, DataElement | None], source: BinaryIO) -> BinaryIO:
    """write_changed as a readable stream (for a blob store's put), without a temporary copy."""
    patches = _patches(header, changes)
    if patches is None:
        out = io.BytesIO()
        write_changed(header, changes, source, out)
        out.seek(0)
        return out
    pieces: list[bytes | tuple[int, int | None]] = []
    position = 0
    for start, end, data in patches:
        pieces += [(position, start), data]
        position = end
    pieces.append((position, None))
    return io.BufferedReader(_Pieces(pieces, source), COPY_CHUNK)
