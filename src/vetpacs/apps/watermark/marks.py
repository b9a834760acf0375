"""The marks themselves, on pixels and file bytes (no database): a light tiled text, a trace token in
the file's metadata (PNG iTXt, JPEG COM) and the same trace in the pixels, which outlives a re-save
that drops the metadata (R-7.3.4.3b)."""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

JPEG = "image/jpeg"
PNG = "image/png"
# PNG iTXt keyword (and the prefix of the JPEG comment) that carries the trace token.
TEXT_KEY = "vetpacs-trace"
# A marked JPEG is written at this quality: a second generation of the rendered picture, kept close
# to it, and fine enough that the pixel trace reads back exactly.
JPEG_QUALITY = 95

# Visible mark: text drawn at this size, tiled on a diagonal, pulled this far towards light grey.
VISIBLE_FONT_PX = 18
VISIBLE_MIN_FONT_PX = 9
VISIBLE_OPACITY = 0.22
VISIBLE_GREY = 210
VISIBLE_ANGLE_DEGREES = 30
_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc",
)

# Pixel trace: quantisation index modulation of the mean of each 8x8 block of luminance. Each bit
# moves a block's mean to the nearest multiple of STEP (bit 0) or of STEP offset by STEP/2 (bit 1):
# a uniform shift of at most STEP/2 grey levels, not seen on a radiograph, which a PNG re-save keeps
# exactly and a JPEG re-save at ordinary quality keeps within the margin (STEP/4).
BLOCK = 8
STEP = 6.0
# 16 fixed bits first: a picture whose pixels do not start with them carries no trace.
SYNC = 0xA5C3
SYNC_BITS = 16
PAYLOAD_BITS = 64
TRACE_BITS = SYNC_BITS + PAYLOAD_BITS


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return _font_cached(size)


@lru_cache(maxsize=16)
def _font_cached(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    # Without the CJK fonts (a bare machine) the clinic's Chinese name draws as boxes, the rest reads.
    return ImageFont.load_default(size)


def draw_visible(img: Image.Image, text: str) -> Image.Image:
    """The text tiled across the picture on a diagonal, light enough to read the image through it."""
    width, height = img.size
    size = max(VISIBLE_MIN_FONT_PX, min(VISIBLE_FONT_PX, width // 24))
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    tile_w, tile_h = int(right - left) + size * 3, int(bottom - top) + size * 3
    side = int(math.hypot(width, height)) + tile_w
    layer = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(layer)
    for row, y in enumerate(range(0, side, tile_h)):
        offset = (tile_w // 2) * (row % 2)
        for x in range(-offset, side, tile_w):
            draw.text((x, y), text, fill=255, font=font)
    layer = layer.rotate(VISIBLE_ANGLE_DEGREES, resample=Image.Resampling.BILINEAR)
    cx, cy = (side - width) // 2, (side - height) // 2
    mask = np.asarray(layer.crop((cx, cy, cx + width, cy + height)), dtype=np.float32) / 255.0
    alpha = mask * VISIBLE_OPACITY
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 3:
        alpha = alpha[:, :, None]
    out = arr * (1.0 - alpha) + VISIBLE_GREY * alpha
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _bits(sync: int, payload: int) -> list[int]:
    word = (sync << PAYLOAD_BITS) | payload
    return [(word >> (TRACE_BITS - 1 - i)) & 1 for i in range(TRACE_BITS)]


def _block_means(lum: np.ndarray) -> np.ndarray:
    rows, cols = lum.shape[0] // BLOCK, lum.shape[1] // BLOCK
    cut = lum[: rows * BLOCK, : cols * BLOCK].astype(np.float64)
    return cut.reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3)).reshape(-1)


def embed_pixels(img: Image.Image, payload: int) -> Image.Image:
    """The 64-bit payload (after the sync word) repeated over every 8x8 block, row by row."""
    arr = np.asarray(img, dtype=np.int16).copy()
    lum = np.asarray(img.convert("L"), dtype=np.float64)
    cols = lum.shape[1] // BLOCK
    bits = _bits(SYNC, payload)
    means = _block_means(lum)
    for index, mean in enumerate(means):
        r, c = divmod(index, cols)
        ys, xs = slice(r * BLOCK, (r + 1) * BLOCK), slice(c * BLOCK, (c + 1) * BLOCK)
        block = arr[ys, xs]
        low, high = int(block.min()), int(block.max())
        base = bits[index % TRACE_BITS] * STEP / 2
        nearest = round((mean - base) / STEP) * STEP + base
        # The nearest point of the bit's lattice whose shift clips no pixel (a clipped shift would
        # not move the mean where it must go); a block spanning nearly 0..255 takes the nearest.
        shifts = sorted((int(round(t - mean)) for t in (nearest - STEP, nearest, nearest + STEP)), key=abs)
        shift = next((d for d in shifts if low + d >= 0 and high + d <= 255), shifts[0])
        if shift:
            arr[ys, xs] += shift
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def read_pixels(img: Image.Image) -> int | None:
    """The payload, by majority over its repetitions; None when the sync word is not there."""
    means = _block_means(np.asarray(img.convert("L"), dtype=np.float64))
    if len(means) < TRACE_BITS:
        return None
    phase = np.mod(means, STEP)
    raw = ((phase >= STEP / 4) & (phase < 3 * STEP / 4)).astype(np.int32)
    usable = (len(raw) // TRACE_BITS) * TRACE_BITS
    votes = raw[:usable].reshape(-1, TRACE_BITS).sum(axis=0)
    copies = usable // TRACE_BITS
    bits = [1 if 2 * v > copies else 0 for v in votes]
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    if word >> PAYLOAD_BITS != SYNC:
        return None
    return word & ((1 << PAYLOAD_BITS) - 1)


def encode(img: Image.Image, media_type: str, token: str) -> bytes:
    """The picture as JPEG or PNG with the token in its metadata."""
    buffer = io.BytesIO()
    if media_type == PNG:
        info = PngInfo()
        info.add_itxt(TEXT_KEY, token)
        img.save(buffer, format="PNG", pnginfo=info)
    else:
        img.save(buffer, format="JPEG", quality=JPEG_QUALITY, comment=f"{TEXT_KEY}:{token}".encode())
    return buffer.getvalue()


def decode(body: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(body))
    img.load()
    return img


def plain(img: Image.Image) -> Image.Image:
    """8-bit grey or RGB, the two kinds of picture the marks work on."""
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def read_text(img: Image.Image) -> str | None:
    """The token from a PNG iTXt chunk or a JPEG comment, if the file still has it."""
    text = getattr(img, "text", None) or {}
    if TEXT_KEY in text:
        return str(text[TEXT_KEY])
    comment = img.info.get("comment")
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", "replace")
    if isinstance(comment, str) and comment.startswith(TEXT_KEY + ":"):
        return comment[len(TEXT_KEY) + 1 :]
    return None
