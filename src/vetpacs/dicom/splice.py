"""Change a DICOM file's header without touching its pixel bytes: parse up to Pixel Data, rewrite that
part, copy the rest verbatim. Pseudonymising on ingest and re-identifying on export cost a few KB of
work instead of re-serialising a whole image.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from vetpacs.core.errors import Errors, VetpacsError

COPY_CHUNK = 256 * 1024
# Syntaxes whose header can be rewritten on its own: every element is little endian and not
# deflated, so the bytes from Pixel Data on stay valid after a new header.
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass
class Header:
    """The dataset up to (not including) Pixel Data, and where Pixel Data starts in the file."""

    ds: Dataset
    pixel_offset: int


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
    return Header(ds=ds, pixel_offset=stream.tell())


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
