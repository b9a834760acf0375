"""The light viewer at /m/ in Chromium: lossless frames, window level, a length in mm, VHS, phone touch."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.browser.images import CALIBRATION_STUDY, MARKER_DISTANCE_MM
from tests.browser.test_ohif import LOSSLESS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"


def grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def distinct_colours(png: bytes) -> int:
    return len(np.unique(grey(png)))


def open_light(page, server, study: str) -> dict:
    frames: list[str] = []
    page.on(
        "response",
        lambda r: frames.append(r.headers.get("content-type", "")) if "/frames/" in r.url else None,
    )
    page.goto(f"{server.url}/m/?study={study}")
    assert page.evaluate("window.vetpacsLight.ready") is True, page.locator("#status").inner_text()
    page.wait_for_function("() => window.vetpacsLight.state().firstImageMs !== null")
    page.wait_for_timeout(300)
    return {"frames": frames}


@pytest.mark.requirement("R-6.2.2d")
@pytest.mark.requirement("R-7.1.5")
def test_light_viewer_draws_the_image_from_lossless_frames(signed_in_page, web_server):
    page = signed_in_page
    seen = open_light(page, web_server, CALIBRATION_STUDY)
    canvas = page.locator("#viewport canvas").first
    assert distinct_colours(canvas.screenshot()) > 20
    assert seen["frames"], "no frame was fetched"
    syntaxes = [re.search(r"transfer-syntax=\"?([0-9.]+)", c) for c in seen["frames"]]
    # Native frames (no transfer-syntax parameter) are uncompressed; the rest must be lossless.
    assert all(m is None or m.group(1) in LOSSLESS for m in syntaxes), seen["frames"]
    # The image was stored as JPEG-LS Lossless and is decoded in the browser, never transcoded lossy.
    # PS3.18 table 8.7.3-2: image/jls without a transfer-syntax parameter is JPEG-LS Lossless.
    jls = [c for c, m in zip(seen["frames"], syntaxes, strict=True) if 'type="image/jls"' in c]
    assert jls and all(m is None or m.group(1) == JPEG_LS_LOSSLESS for m in syntaxes), seen["frames"]
    text = page.locator("#tools").inner_text()
    assert ("测距" in text) if page.language.startswith("zh") else ("Length" in text)


def _marker_centres(page) -> list[tuple[float, float]]:
    """Page coordinates of the two bright markers, found in a screenshot of the canvas."""
    canvas = page.locator("#viewport canvas").first
    box = canvas.bounding_box()
    img = grey(canvas.screenshot())
    scale_x, scale_y = img.shape[1] / box["width"], img.shape[0] / box["height"]
    ys, xs = np.nonzero(img > 245)
    assert len(xs), "no marker visible"
    mid = xs.mean()
    out = []
    for side in (xs < mid, xs >= mid):
        out.append((box["x"] + xs[side].mean() / scale_x, box["y"] + ys[side].mean() / scale_y))
    return out


def drag(page, start, end, steps: int = 12) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


@pytest.mark.requirement("R-6.2.2d")
@pytest.mark.requirement("R-6.2.2f")
def test_length_between_markers_reads_the_known_millimetres(signed_in_page, web_server):
    page = signed_in_page
    open_light(page, web_server, CALIBRATION_STUDY)
    left, right = _marker_centres(page)
    page.locator("#tools button[data-mode=length]").click()
    drag(page, left, right)
    page.wait_for_function("() => window.vetpacsLight.measurements().length === 1")
    m = page.evaluate("window.vetpacsLight.measurements()[0]")
    assert m["unit"] == "mm"
    assert abs(m["value"] - MARKER_DISTANCE_MM) < 1.0, m
    assert f"{m['value']:.1f} mm" in page.locator("#measure-result").inner_text()


@pytest.mark.requirement("R-6.2.2f")
def test_dragging_in_window_mode_changes_window_width_and_level(signed_in_page, web_server):
    page = signed_in_page
    open_light(page, web_server, CALIBRATION_STUDY)
    before = page.evaluate("window.vetpacsLight.state()")
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    drag(page, (cx, cy), (cx + 120, cy + 80))
    after = page.evaluate("window.vetpacsLight.state()")
    assert after["windowWidth"] != before["windowWidth"]
    assert after["windowCenter"] != before["windowCenter"]
    assert "W " in page.locator("#overlay-br").inner_text()


@pytest.mark.requirement("R-6.2.2f")
def test_rotate_turns_the_image_a_quarter(signed_in_page, web_server):
    page = signed_in_page
    open_light(page, web_server, CALIBRATION_STUDY)
    page.locator("#tools button[data-action=rotate]").click()
    assert page.evaluate("window.vetpacsLight.state().rotation") == 90


def canvas_point(page, world: list[float]) -> tuple[float, float]:
    """Page coordinates of a point given in image millimetres (world coordinates of the stack)."""
    box = page.locator("#viewport canvas").first.bounding_box()
    x, y = page.evaluate("p => window.vetpacsLight.worldToCanvas(p)", world)
    return box["x"] + x, box["y"] + y


@pytest.mark.requirement("R-6.2.2f")
def test_vhs_from_three_lines_in_vertebral_units_with_reference_ranges(signed_in_page, web_server):
    page = signed_in_page
    open_light(page, web_server, CALIBRATION_STUDY)
    page.locator("#tools button[data-mode=vhs]").click()
    # Long axis 40 mm, short axis 30 mm, 4 vertebral bodies over 32 mm (8 mm each): 5 v + 3.75 v.
    for start, end in (([20, 20, 0], [60, 20, 0]), ([30, 40, 0], [30, 70, 0]), ([10, 85, 0], [42, 85, 0])):
        drag(page, canvas_point(page, start), canvas_point(page, end))
    page.wait_for_function("() => window.vetpacsLight.vhs().lines === 3")
    result = page.evaluate("window.vetpacsLight.vhs()")
    assert abs(result["long"] - 5.0) < 0.1 and abs(result["short"] - 3.75) < 0.1
    assert abs(result["score"] - 8.75) < 0.15 and result["verdict"] == "normal"  # a beagle: dog range
    panel = page.locator("#panel").inner_text()
    assert "VHS 8.7" in panel or "VHS 8.8" in panel
    assert "8.7–10.7" in panel and "6.9–8.1" in panel
    # Five vertebrae instead of four: each is shorter, so the score grows.
    page.fill("#vhs-n", "5")
    page.press("#vhs-n", "Enter")
    page.wait_for_function("() => window.vetpacsLight.vhs().score > 10.9")


def touch(cdp, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y} for x, y in points]})


@pytest.mark.requirement("R-6.2.2d")
@pytest.mark.requirement("R-6.2.2f")
def test_phone_touch_drag_sets_window_and_pinch_zooms(phone_page, web_server):
    page = phone_page
    open_light(page, web_server, CALIBRATION_STUDY)
    assert page.viewport_size == {"width": 390, "height": 844}
    canvas = page.locator("#viewport canvas").first
    assert distinct_colours(canvas.screenshot()) > 20
    box = page.locator("#viewport").bounding_box()
    assert box["width"] == 390
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    before = page.evaluate("window.vetpacsLight.state()")
    touch(cdp, "touchStart", [(cx, cy)])
    for i in range(1, 11):
        touch(cdp, "touchMove", [(cx + 8 * i, cy + 6 * i)])
    touch(cdp, "touchEnd", [])
    after = page.evaluate("window.vetpacsLight.state()")
    assert after["windowWidth"] != before["windowWidth"], "one-finger drag did not change the window"
    touch(cdp, "touchStart", [(cx - 30, cy), (cx + 30, cy)])
    for i in range(1, 11):
        touch(cdp, "touchMove", [(cx - 30 - 8 * i, cy), (cx + 30 + 8 * i, cy)])
    touch(cdp, "touchEnd", [])
    zoomed = page.evaluate("window.vetpacsLight.state()")
    assert zoomed["zoom"] > after["zoom"] * 1.2, "pinching apart did not zoom in"
    # Every tool is reachable on the phone: the toolbar scrolls sideways inside the screen.
    assert page.locator("#tools").bounding_box()["width"] <= 390
