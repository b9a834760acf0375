"""Read single frames from a stored DICOM file without loading the rest of its pixel data."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from vetpacs.core.errors import Errors, VetpacsError

PIXEL_DATA = 0x7FE00010
OCTET_STREAM = "application/octet-stream"
UNDEFINED_LENGTH = 0xFFFFFFFF

# PS3.18 Table 8.7.3-5: the media type of a frame in each compressed transfer syntax; the first
# syntax listed for a media type is that type's default.
MEDIA_TYPE_SYNTAXES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "video/mpeg": ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"),
    "video/mp4": tuple(f"1.2.840.10008.1.2.4.{n}" for n in range(102, 107)),
    "video/H265": ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"),
}
SYNTAX_MEDIA_TYPE = {ts: media for media, syntaxes in MEDIA_TYPE_SYNTAXES.items() for ts in syntaxes}

# Native syntaxes whose frames can be cut straight out of the file (little endian, not deflated).
_SLICEABLE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
_PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
)


def media_type_of(transfer_syntax: str) -> str:
    """The media type of one frame stored in this syntax (PS3.18 8.7.3.3.2)."""
    if not UID(transfer_syntax).is_encapsulated:
        return OCTET_STREAM
    return SYNTAX_MEDIA_TYPE.get(str(transfer_syntax), OCTET_STREAM)


@dataclass
class PixelSource:
    """Where the pixel data of an open file starts, and the attributes that describe it."""

    stream: BinaryIO
    header: Dataset  # every element before Pixel Data
    transfer_syntax: UID
    value_offset: int
    value_length: int  # UNDEFINED_LENGTH for encapsulated data
    number_of_frames: int

    @property
    def encapsulated(self) -> bool:
        return self.transfer_syntax.is_encapsulated

    @property
    def frame_size(self) -> int:
        h = self.header
        return int(h.Rows) * int(h.Columns) * int(h.get("SamplesPerPixel") or 1) * int(h.BitsAllocated) // 8


def open_pixels(stream: BinaryIO) -> PixelSource:
    """Parse everything up to Pixel Data and leave its bytes unread. Raises NOT_FOUND without pixels."""
    if not stream.seekable():
        stream = io.BytesIO(stream.read())
    header = pydicom.dcmread(stream, stop_before_pixels=True)
    ts = UID(header.file_meta.TransferSyntaxUID)
    frames = max(int(header.get("NumberOfFrames") or 1), 1)
    if ts not in _SLICEABLE and not ts.is_encapsulated:
        # Deflated or big endian: offsets in the file mean nothing; decode_frame reads it whole.
        return PixelSource(stream, header, ts, -1, UNDEFINED_LENGTH, frames)
    tag_start = stream.tell()
    raw = stream.read(12)
    if len(raw) < 8 or struct.unpack("<HH", raw[:4]) != (0x7FE0, 0x0010):
        raise VetpacsError(Errors.NOT_FOUND, "the instance has no Pixel Data (7FE0,0010)")
    if ts == ImplicitVRLittleEndian:
        (length,) = struct.unpack("<L", raw[4:8])
        offset = tag_start + 8
    else:
        # PS3.5 7.1.2: OB/OW have two reserved bytes and a 32-bit length.
        (length,) = struct.unpack("<L", raw[8:12])
        offset = tag_start + 12
    return PixelSource(stream, header, ts, offset, length, frames)


def _extended_offsets(header: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in header and "ExtendedOffsetTableLengths" in header:
        return header.ExtendedOffsetTable, header.ExtendedOffsetTableLengths
    return None


def stored_frame(src: PixelSource, index: int) -> bytes:
    """Frame `index` (0-based) exactly as stored: the compressed codestream, or the native bytes."""
    if src.encapsulated:
        src.stream.seek(src.value_offset)
        return get_frame(
            src.stream,
            index,
            number_of_frames=src.number_of_frames,
            extended_offsets=_extended_offsets(src.header),
        )
    if src.transfer_syntax in _SLICEABLE and int(src.header.BitsAllocated) % 8 == 0:
        size = src.frame_size
        src.stream.seek(src.value_offset + index * size)
        data = src.stream.read(size)
        if len(data) != size:
            raise VetpacsError(Errors.INCONSISTENT_PIXEL_DATA, f"frame {index + 1} is truncated")
        return data
    return native_frame(src, index)


def _frame_dataset(src: PixelSource, frame: bytes) -> Dataset:
    ds = Dataset()
    for keyword in _PIXEL_MODULE:
        if keyword in src.header:
            setattr(ds, keyword, src.header[keyword].value)
    ds.NumberOfFrames = 1
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = src.transfer_syntax
    ds.PixelData = encapsulate([frame]) if src.encapsulated else frame
    return ds


def decode_frame(src: PixelSource, index: int) -> np.ndarray:
    """Frame `index` (0-based) as an array; colour frames come out as RGB (pydicom's convention)."""
    try:
        if src.encapsulated or (src.transfer_syntax in _SLICEABLE and int(src.header.BitsAllocated) % 8 == 0):
            return _frame_dataset(src, stored_frame(src, index)).pixel_array
        # Big endian, deflated or 1-bit native data: let pydicom read the whole element.
        src.stream.seek(0)
        return pixel_array(src.stream, index=index)
    except (NotImplementedError, RuntimeError, ImportError, ValueError) as exc:
        raise VetpacsError(
            Errors.CODEC_UNAVAILABLE, f"cannot decode frame {index + 1} in {src.transfer_syntax}: {exc}"
        ) from None


def native_frame(src: PixelSource, index: int) -> bytes:
    """Frame `index` uncompressed, little endian, as PS3.18 8.7.3.3.2 application/octet-stream."""
    arr = decode_frame(src, index)
    if int(src.header.BitsAllocated) == 1:
        return pack_bits(arr)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def iter_stored_frames(src: PixelSource, indices: list[int]) -> Iterator[bytes]:
    for index in indices:
        yield stored_frame(src, index)
