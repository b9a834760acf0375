"""JPEG and PNG stills -> Secondary Capture Image (PS3.3 A.8.1): RGB where the source is colour, else grey."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

from vetpacs.gateway.convert.attributes import ConversionError, StudyAttributes
from vetpacs.gateway.convert.common import CONVERSION_TYPE_WORKSTATION, new_dataset

# Decompression-bomb guard: 20,000 x 20,000 pixels is larger than any clinic photo or scanner page.
MAX_PIXELS = 400_000_000


def load_pixels(path: Path) -> tuple[np.ndarray, str, bool]:
    """(pixels, photometric interpretation, source was lossy-compressed) of a still image."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as opened:
            fmt = opened.format
            opened.load()
            # A phone stores a portrait photo landscape with an EXIF turn; show it as the user saw it.
            img: Image.Image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ConversionError(f"{path.name}: the image cannot be read ({exc})") from exc
    lossy = fmt == "JPEG"
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 0xFFFF:
            raise ConversionError(f"{path.name}: grey values outside 0..65535 are not supported")
        return arr.astype(np.uint16), "MONOCHROME2", lossy
    if img.mode in ("L", "LA", "1"):
        return np.asarray(img.convert("L")), "MONOCHROME2", lossy
    rgb = np.asarray(img.convert("RGB"))
    return rgb, "RGB", lossy


def convert_still(path: Path, attrs: StudyAttributes) -> Dataset:
    pixels, photometric, lossy = load_pixels(path)
    ds = new_dataset(sop_class_uid=SecondaryCaptureImageStorage)
    attrs.apply(ds, default_modality="XC")  # XC: external-camera photography
    ds.ConversionType = CONVERSION_TYPE_WORKSTATION
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
    bits = 16 if pixels.dtype == np.uint16 else 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    # PS3.3 C.7.6.1.1.5: a JPEG source was lossy-compressed once; say so, even though we store it raw.
    if lossy:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds
