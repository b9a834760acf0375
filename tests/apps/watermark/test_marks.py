"""The marks on pixels and bytes, without a database: visible text, metadata token, pixel trace."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vetpacs.apps.watermark import marks

PAYLOAD = 0x0000_1234_DEAD_BEEF


def radiograph(width: int = 256, height: int = 192, mode: str = "L") -> Image.Image:
    """A smooth picture with black background, a bright body and a white marker, like a radiograph."""
    y, x = np.mgrid[0:height, 0:width]
    body = 200 * np.exp(-(((x - width / 2) / (width / 3)) ** 2 + ((y - height / 2) / (height / 3)) ** 2))
    arr = np.clip(body, 0, 255).astype(np.uint8)
    arr[10:30, 10:40] = 255
    img = Image.fromarray(arr)
    return img.convert(mode) if mode != "L" else img


def resave(body: bytes, fmt: str, **options) -> bytes:
    """What a user's picture viewer does on 'save as': pixels kept, our metadata dropped."""
    out = io.BytesIO()
    Image.open(io.BytesIO(body)).save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.requirement("R-7.3.4.3b")
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_pixel_trace_reads_back_and_survives_a_png_resave_without_metadata(mode):
    marked = marks.embed_pixels(radiograph(mode=mode), PAYLOAD)
    body = marks.encode(marked, marks.PNG, "1.7.abc")
    assert marks.read_text(marks.decode(body)) == "1.7.abc"
    again = resave(body, "PNG")
    assert marks.read_text(marks.decode(again)) is None  # the re-save dropped the iTXt chunk...
    assert marks.read_pixels(marks.decode(again)) == PAYLOAD  # ...the pixels still carry the trace


@pytest.mark.requirement("R-7.3.4.3b")
@pytest.mark.parametrize("quality", [95, 85, 75])
def test_pixel_trace_survives_a_jpeg_resave(quality):
    body = marks.encode(marks.embed_pixels(radiograph(), PAYLOAD), marks.JPEG, "1.7.abc")
    assert marks.read_text(marks.decode(body)) == "1.7.abc"
    again = resave(body, "JPEG", quality=quality, comment=b"")
    assert marks.read_text(marks.decode(again)) is None
    assert marks.read_pixels(marks.decode(again)) == PAYLOAD


def test_pixel_trace_is_invisible_a_few_grey_levels_per_block():
    plain = radiograph()
    marked = marks.embed_pixels(plain, PAYLOAD)
    diff = np.abs(np.asarray(marked, dtype=int) - np.asarray(plain, dtype=int))
    # Half a step at most, except a block against black or white that must go the other way.
    assert np.percentile(diff, 99) <= marks.STEP / 2 + 1 and diff.max() <= marks.STEP
    assert diff.mean() < marks.STEP / 4 + 0.5


def test_an_unmarked_picture_has_no_trace_and_a_tiny_one_has_no_room():
    assert marks.read_pixels(radiograph()) is None
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 255, (256, 256), dtype=np.uint8))
    assert marks.read_pixels(noise) is None
    tiny = marks.embed_pixels(radiograph(32, 32), PAYLOAD)
    assert marks.read_pixels(tiny) is None


def test_visible_mark_is_light_and_tiled_over_the_whole_picture():
    plain = radiograph(400, 300)
    shown = marks.draw_visible(plain, "安心宠物医院  admin-li  2026-12-04 21:30")
    before, after = np.asarray(plain, dtype=int), np.asarray(shown, dtype=int)
    changed = before != after
    # Text in every quarter of the picture, on a small share of its pixels, never darker than grey.
    for quarter in (changed[:150, :200], changed[:150, 200:], changed[150:, :200], changed[150:, 200:]):
        assert quarter.any()
    assert 0.03 < changed.mean() < 0.5
    assert np.abs(after - before).max() <= 255 * marks.VISIBLE_OPACITY + 1
