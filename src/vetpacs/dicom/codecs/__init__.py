"""Lossless codecs: compress uncompressed pixel data to JPEG-LS and decompress anything we store.

Lossless only (R-7.5c). A missing codec is a clear 'codec unavailable' error, never an ImportError
at start-up.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from vetpacs.core.errors import Errors, VetpacsError

STORAGE_SYNTAX = JPEGLSLossless
LOSSLESS_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
        JPEGLSLossless,
        JPEGLosslessSV1,
        "1.2.840.10008.1.2.4.57",
        JPEG2000Lossless,
        RLELossless,
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    }
)


def is_lossless(transfer_syntax: str) -> bool:
    return str(transfer_syntax) in LOSSLESS_SYNTAXES


def is_uncompressed(transfer_syntax: str) -> bool:
    return not UID(transfer_syntax).is_encapsulated


def can_compress(ds: Dataset, *, has_pixel_data: bool | None = None) -> bool:
    """JPEG-LS (CharLS) takes 2-16 bit integer pixels, 1 or 3 samples; leave the rest as they are."""
    present = has_pixel_data if has_pixel_data is not None else "PixelData" in ds
    if not present or not is_uncompressed(ds.file_meta.TransferSyntaxUID):
        return False
    bits = int(ds.get("BitsAllocated") or 0)
    stored = int(ds.get("BitsStored") or bits)
    samples = int(ds.get("SamplesPerPixel") or 1)
    photometric = str(ds.get("PhotometricInterpretation") or "")
    if ds.get("FloatPixelData") is not None or ds.get("DoubleFloatPixelData") is not None:
        return False
    return (
        bits in (8, 16)
        and 2 <= stored <= 16
        and samples in (1, 3)
        and photometric in ("MONOCHROME1", "MONOCHROME2", "RGB")
        and int(ds.get("PlanarConfiguration") or 0) == 0
    )


def compress_jpegls(ds: Dataset) -> Dataset:
    """Encode ds in place as JPEG-LS Lossless and prove the round trip is pixel-exact."""
    try:
        original = ds.pixel_array.copy()
        ds.compress(STORAGE_SYNTAX, encoding_plugin="pyjpegls", generate_instance_uid=False)
    except (ImportError, RuntimeError) as exc:
        raise VetpacsError(Errors.CODEC_UNAVAILABLE, f"JPEG-LS encoder: {exc}") from None
    # R-7.5c: never store anything that does not decode to the very same pixels.
    check = ds.pixel_array
    if check.shape != original.shape or not np.array_equal(check, original):
        raise VetpacsError(Errors.CODEC_UNAVAILABLE, "JPEG-LS round trip was not pixel-exact")
    return ds


def decompress(ds: Dataset) -> Dataset:
    """Decode encapsulated pixel data in place to Explicit VR Little Endian."""
    if not UID(ds.file_meta.TransferSyntaxUID).is_encapsulated:
        if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return ds
    try:
        ds.decompress(generate_instance_uid=False)
    except (NotImplementedError, RuntimeError, ImportError) as exc:
        raise VetpacsError(
            Errors.CODEC_UNAVAILABLE,
            f"cannot decode transfer syntax {ds.file_meta.TransferSyntaxUID}: {exc}",
        ) from None
    return ds
