"""Render a decoded frame to an 8-bit JPEG or PNG with PS3.18 8.3.5 parameters: LUTs, window, viewport."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut

from vetpacs.core.errors import Errors, VetpacsError

JPEG = "image/jpeg"
PNG = "image/png"
MEDIA_TYPES = (JPEG, PNG)
DEFAULT_JPEG_QUALITY = 90
THUMBNAIL_SIZE = 128
# PS3.3 C.11.2.1.3: the three VOI LUT functions.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """PS3.18 8.3.5.1.3: the output size, and optionally the source region (negative size flips)."""

    width: int
    height: int
    sx: float = 0
    sy: float = 0
    sw: float | None = None
    sh: float | None = None


def _numbers(text: str, name: str) -> list[float | None]:
    out: list[float | None] = []
    for raw in text.split(","):
        piece = raw.strip()
        if not piece:
            out.append(None)
            continue
        try:
            value = float(piece)
        except ValueError:
            raise VetpacsError(Errors.BAD_REQUEST, f"{name}: {piece!r} is not a number") from None
        if not math.isfinite(value):
            raise VetpacsError(Errors.BAD_REQUEST, f"{name}: {piece!r} is not a finite number")
        out.append(value)
    return out


def parse_window(text: str) -> Window:
    """`center,width,function` (PS3.18 8.3.5.1.4); function is linear, linear-exact or sigmoid."""
    parts = text.split(",")
    if len(parts) != 3:
        raise VetpacsError(Errors.BAD_REQUEST, f"window must be 'center,width,function', not {text!r}")
    center, width = _numbers(",".join(parts[:2]), "window")
    function = parts[2].strip().upper().replace("-", "_")
    if center is None or width is None or width <= 0:
        raise VetpacsError(Errors.BAD_REQUEST, f"window {text!r} needs a center and a width above 0")
    if function not in VOI_FUNCTIONS:
        raise VetpacsError(
            Errors.BAD_REQUEST, f"window function {parts[2].strip()!r} is not linear, linear-exact or sigmoid"
        )
    return Window(center, width, function)


def parse_viewport(text: str) -> Viewport:
    """`vw,vh` or `vw,vh,sx,sy,sw,sh` (PS3.18 8.3.5.1.3)."""
    values = _numbers(text, "viewport")
    if len(values) not in (2, 6) or values[0] is None or values[1] is None:
        raise VetpacsError(
            Errors.BAD_REQUEST, f"viewport must be 'vw,vh' or 'vw,vh,sx,sy,sw,sh', not {text!r}"
        )
    vw, vh = int(values[0]), int(values[1])
    if not (1 <= vw <= 8192 and 1 <= vh <= 8192):
        raise VetpacsError(Errors.BAD_REQUEST, f"viewport size {vw}x{vh} is outside 1..8192")
    if len(values) == 2:
        return Viewport(vw, vh)
    sx, sy, sw, sh = values[2:]
    return Viewport(vw, vh, sx or 0, sy or 0, sw, sh)


def parse_quality(text: str) -> int:
    try:
        quality = int(text)
    except ValueError:
        raise VetpacsError(Errors.BAD_REQUEST, f"quality {text!r} is not a whole number") from None
    if not 1 <= quality <= 100:
        raise VetpacsError(Errors.BAD_REQUEST, f"quality {quality} is outside 1..100")
    return quality


def _dataset_window(ds: Dataset) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center in (None, "") or width in (None, ""):
        return None
    # Several windows may be offered; the first is the default presentation (PS3.3 C.11.2.1.2).
    center = center[0] if _is_multi(center) else center
    width = width[0] if _is_multi(width) else width
    function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
    if float(width) <= 0:
        return None
    return Window(float(center), float(width), function if function in VOI_FUNCTIONS else "LINEAR")


def _is_multi(value: object) -> bool:
    return isinstance(value, list | tuple) or value.__class__.__name__ == "MultiValue"


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2: map values to 0..255 through the window."""
    x = values.astype(np.float64, copy=False)
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = ((x - c) / w + 0.5) * 255.0
    elif w <= 1:
        # LINEAR with a width of 1 is a threshold at the center.
        out = np.where(x > c - 0.5, 255.0, 0.0)
    else:
        out = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _scale_to_8bit(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8 and bits <= 8:
        return values
    top = float(2**bits - 1) if bits > 0 else float(values.max() or 1)
    return np.clip(np.rint(values.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def to_display(arr: np.ndarray, ds: Dataset, window: Window | None = None) -> np.ndarray:
    """An 8-bit grey (H, W) or RGB (H, W, 3) image of one decoded frame, as a viewer would show it."""
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        return _scale_to_8bit(rgb, 16 if rgb.dtype != np.uint8 else 8)
    if not photometric.startswith("MONOCHROME"):
        # Colour is passed through (pydicom already converted YBR to RGB when decoding).
        return _scale_to_8bit(arr, int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8))
    values = apply_modality_lut(arr, ds)
    window = window or _dataset_window(ds)
    if window is not None:
        out = apply_window(values, window)
    elif "VOILUTSequence" in ds:
        lut = ds.VOILUTSequence[0]
        out = _scale_to_8bit(apply_voi_lut(values, ds, prefer_lut=True), int(lut.LUTDescriptor[2]))
    else:
        low, high = float(np.min(values)), float(np.max(values))
        out = apply_window(values, Window((low + high) / 2 + 0.5, max(high - low + 1, 1.0)))
    if photometric == "MONOCHROME1":
        # PS3.3 C.7.6.3.1.2: MONOCHROME1 shows the minimum value as white.
        out = 255 - out
    return out


def _apply_viewport(img: Image.Image, viewport: Viewport) -> Image.Image:
    if viewport.sw is not None or viewport.sh is not None or viewport.sx or viewport.sy:
        sw = viewport.sw if viewport.sw is not None else img.width - viewport.sx
        sh = viewport.sh if viewport.sh is not None else img.height - viewport.sy
        left, top = viewport.sx, viewport.sy
        box = (
            int(round(min(left, left + sw))),
            int(round(min(top, top + sh))),
            int(round(max(left, left + sw))),
            int(round(max(top, top + sh))),
        )
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise VetpacsError(Errors.BAD_REQUEST, "viewport source region is empty")
        img = img.crop(box)
        if sw < 0:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    # Fit inside the viewport keeping the aspect ratio; both shrinking and enlarging are allowed.
    scale = min(viewport.width / img.width, viewport.height / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS) if size != img.size else img


def _encode(img: Image.Image, media_type: str, quality: int | None) -> bytes:
    buf = io.BytesIO()
    if media_type == PNG:
        img.save(buf, format="PNG", optimize=False, compress_level=3)
    else:
        img.save(buf, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY)
    return buf.getvalue()


def render(
    arr: np.ndarray,
    ds: Dataset,
    *,
    media_type: str = JPEG,
    window: Window | None = None,
    viewport: Viewport | None = None,
    quality: int | None = None,
    max_size: int | None = None,
) -> bytes:
    """One frame as JPEG or PNG bytes. max_size bounds both sides (thumbnails) when no viewport is given."""
    if media_type not in MEDIA_TYPES:
        raise VetpacsError(Errors.NOT_ACCEPTABLE, f"cannot render to {media_type}")
    pixels = to_display(arr, ds, window)
    img = Image.fromarray(pixels)
    if viewport is not None:
        img = _apply_viewport(img, viewport)
    elif max_size is not None:
        img.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return _encode(img, media_type, quality)
