"""Read and validate a DICOM Part 10 file; every refusal names what was wrong."""

from __future__ import annotations

import os
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.core.ids import is_valid_uid

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Elements larger than this are not loaded until needed (pixel data stays on disk while indexing).
DEFER_SIZE = 64 * 1024


def read_dataset(source: str | os.PathLike[str] | BinaryIO, *, defer: bool = True) -> Dataset:
    try:
        ds = pydicom.dcmread(source, defer_size=DEFER_SIZE if defer else None)
    except InvalidDicomError as exc:
        raise VetpacsError(Errors.NOT_DICOM, f"not a DICOM Part 10 file: {exc}") from None
    except (EOFError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise VetpacsError(Errors.NOT_DICOM, f"the DICOM file cannot be parsed: {exc}") from None
    if "TransferSyntaxUID" not in ds.file_meta:
        raise VetpacsError(Errors.MISSING_ATTRIBUTE, "file meta has no Transfer Syntax UID (0002,0010)")
    return ds


def is_storage_sop_class(uid: str) -> bool:
    try:
        return uid_to_service_class(uid) is StorageServiceClass
    except Exception:  # noqa: BLE001 - pynetdicom raises on unknown UIDs in some versions
        return False


def validate(ds: Dataset, *, pixel_length: int | None = None, has_pixel_data: bool | None = None) -> None:
    """Refuse what the archive cannot index or serve faithfully.

    A dataset read only up to Pixel Data passes has_pixel_data and the element's pixel_length.
    """
    for keyword in REQUIRED_UIDS:
        value = str(ds.get(keyword, "") or "").strip()
        if not value:
            raise VetpacsError(Errors.MISSING_ATTRIBUTE, f"{keyword} is missing or empty")
        if not is_valid_uid(value):
            raise VetpacsError(Errors.INVALID_UID, f"{keyword} {value!r} is not a well-formed UID")
    sop_class = str(ds.SOPClassUID)
    if not is_storage_sop_class(sop_class):
        raise VetpacsError(
            Errors.UNKNOWN_SOP_CLASS, f"SOP Class UID {sop_class} is not a known storage SOP class"
        )
    meta_sop = ds.file_meta.get("MediaStorageSOPInstanceUID")
    if meta_sop and str(meta_sop) != str(ds.SOPInstanceUID):
        raise VetpacsError(
            Errors.MISSING_ATTRIBUTE,
            f"Media Storage SOP Instance UID {meta_sop} differs from SOP Instance UID {ds.SOPInstanceUID}",
        )
    if has_pixel_data if has_pixel_data is not None else "PixelData" in ds:
        _validate_pixel_module(ds, pixel_length)


def _validate_pixel_module(ds: Dataset, pixel_length: int | None = None) -> None:
    for keyword in ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel"):
        if ds.get(keyword) in (None, ""):
            raise VetpacsError(
                Errors.INCONSISTENT_PIXEL_DATA, f"Pixel Data is present but {keyword} is missing"
            )
    ts = UID(ds.file_meta.TransferSyntaxUID)
    if ts.is_encapsulated:
        return
    frames = int(ds.get("NumberOfFrames") or 1)
    bits = int(ds.BitsAllocated)
    pixels = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)
    actual = pixel_length if pixel_length is not None else _value_length(ds, 0x7FE00010)
    if actual == 0xFFFFFFFF:
        raise VetpacsError(
            Errors.INCONSISTENT_PIXEL_DATA,
            f"Pixel Data is encapsulated but the transfer syntax {ts} is not a compressed one",
        )
    if actual is not None and actual < expected:
        raise VetpacsError(
            Errors.INCONSISTENT_PIXEL_DATA,
            f"Pixel Data holds {actual} bytes but Rows x Columns x Samples x Frames x Bits needs {expected}",
        )


def _value_length(ds: Dataset, tag: int) -> int | None:
    elem = ds.get_item(tag)
    if elem is None:
        return None
    length = getattr(elem, "length", None)
    if length is not None and length != 0xFFFFFFFF:
        return int(length)
    value = elem.value
    return len(value) if isinstance(value, bytes | bytearray) else None
