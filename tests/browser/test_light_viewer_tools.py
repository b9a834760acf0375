"""The light viewer's other tools in Chromium: Norberg angle, calibration without pixel spacing,
magnifier, swipe paging on a phone with touch, and switching series."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from tests.browser.conftest import role_user, signed_in_context
from tests.browser.images import (
    CALIBRATION_STUDY,
    MARKERS,
    STACK_IMAGES,
    UNCALIBRATED_MARKER_PX,
    VIEWER_CLINIC,
    VIEWER_STUDY,
    viewer_study,
)
from tests.browser.test_light_viewer import canvas_point, distinct_colours, drag, grey, open_light, touch

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VIEWER_USER = "viewer-test-rad"


@pytest.fixture(scope="module")
def viewer_clinic(web_server, tmp_path_factory) -> str:
    """A clinic of its own holding the stack study, and a radiologist of it; returns the username."""
    from tests.builders.dicom import write

    web_server.run_cli("create-org", VIEWER_CLINIC)
    folder = tmp_path_factory.mktemp("viewer-study")
    for ds in viewer_study():
        write(ds, folder)
    web_server.run_cli("import", str(folder), "--org", VIEWER_CLINIC)
    return role_user(web_server, "radiologist", VIEWER_CLINIC, username=VIEWER_USER)


def _page(browser, server, *, username: str | None = None, phone: bool = False) -> Iterator:
    options = {"username": username} if username else {}
    context = signed_in_context(browser, server, phone=phone, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def desktop(browser, web_server, viewer_clinic) -> Iterator:
    yield from _page(browser, web_server, username=viewer_clinic)


@pytest.fixture
def phone(browser, web_server, viewer_clinic) -> Iterator:
    yield from _page(browser, web_server, username=viewer_clinic, phone=True)


@pytest.fixture
def demo_desktop(browser, web_server) -> Iterator:
    yield from _page(browser, web_server)


def rim(vertex: tuple[float, float], towards: tuple[float, float], degrees: float) -> list[float]:
    """A point 20 mm from vertex whose arm makes `degrees` with the arm towards the other head."""
    base = math.atan2(towards[1] - vertex[1], towards[0] - vertex[0])
    turn = base - math.radians(degrees)  # turned towards the cranial (upper) side of the image
    return [vertex[0] + 20 * math.cos(turn), vertex[1] + 20 * math.sin(turn), 0]


def click_three(page, points: list[list[float]]) -> None:
    """Cornerstone's angle tool: press on the first point, release on the second, click the third."""
    first, second, third = (canvas_point(page, p) for p in points)
    drag(page, first, second)
    page.mouse.click(*third)


@pytest.mark.requirement("R-6.2.2f")
def test_norberg_angles_of_known_geometry_read_left_normal_and_right_low(demo_desktop, web_server):
    page = demo_desktop
    open_light(page, web_server, CALIBRATION_STUDY)
    page.locator("#tools button[data-mode=norberg]").click()
    left_head, right_head = (30.0, 50.0), (70.0, 50.0)
    # Left hip: 110° (congruent); right hip: 95° (below the 105° threshold).
    click_three(page, [[*right_head, 0], [*left_head, 0], rim(left_head, right_head, -110)])
    page.wait_for_function("() => window.vetpacsLight.norberg().length === 1")
    click_three(page, [[*left_head, 0], [*right_head, 0], rim(right_head, left_head, 95)])
    page.wait_for_function("() => window.vetpacsLight.norberg().length === 2")
    left, right = page.evaluate("window.vetpacsLight.norberg()")
    assert abs(left["angle"] - 110) < 1.0 and left["verdict"] == "normal", left
    assert abs(right["angle"] - 95) < 1.0 and right["verdict"] == "low", right
    text = page.locator("#norberg-result").inner_text()
    assert f"{left['angle']:.1f}°" in text and f"{right['angle']:.1f}°" in text and "105°" in text


def _switch_to_series(page, number: int) -> None:
    page.locator("#series").select_option(index=number - 1)
    page.wait_for_function(f"() => window.vetpacsLight.state().shownSeries === {number - 1}")


@pytest.mark.requirement("R-6.2.2f")
def test_series_switching_shows_the_other_series_and_its_own_image_count(desktop, web_server):
    page = desktop
    open_light(page, web_server, VIEWER_STUDY)
    options = page.locator("#series option").all_inner_texts()
    assert len(options) == 2 and "Axial 横断" in options[0] and "No spacing 无间距" in options[1]
    state = page.evaluate("window.vetpacsLight.state()")
    assert (state["seriesCount"], state["imageCount"], state["spacing"]) == (2, STACK_IMAGES, [0.2, 0.2])
    before = grey(page.locator("#viewport canvas").first.screenshot())
    _switch_to_series(page, 2)
    state = page.evaluate("window.vetpacsLight.state()")
    assert (state["imageCount"], state["spacing"]) == (1, None)
    assert "#2 No spacing" in page.locator("#overlay-tl").inner_text()
    after = grey(page.locator("#viewport canvas").first.screenshot())
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 5, "the picture did not change"


@pytest.mark.requirement("R-6.2.2f")
def test_calibration_on_an_image_without_spacing_makes_later_lengths_read_millimetres(desktop, web_server):
    page = desktop
    open_light(page, web_server, VIEWER_STUDY)
    _switch_to_series(page, 2)
    # Without a pixel spacing the world unit is one pixel: the markers are 100 units apart.
    (row, c0), (_, c1) = MARKERS
    page.locator("#tools button[data-mode=length]").click()
    drag(page, canvas_point(page, [c0, row, 0]), canvas_point(page, [c1, row, 0]))
    page.wait_for_function("() => window.vetpacsLight.measurements().length === 1")
    first = page.evaluate("window.vetpacsLight.measurements()[0]")
    assert first["unit"] == "px" and abs(first["value"] - UNCALIBRATED_MARKER_PX) < 1.5, first
    assert "像素间距" in page.locator("#panel").inner_text()  # says why it reads pixels
    # Calibrate on a 40-pixel line said to be 20 mm long: 0.5 mm per pixel.
    page.locator("#tools button[data-mode=calibrate]").click()
    drag(page, canvas_point(page, [20, 140, 0]), canvas_point(page, [60, 140, 0]))
    page.fill("#cal-mm", "20")
    page.locator("#cal-apply").click()
    page.wait_for_function("() => window.vetpacsLight.state().calibration !== null")
    # A length drawn after the calibration reads millimetres; so does the one before it.
    page.locator("#tools button[data-mode=length]").click()
    drag(page, canvas_point(page, [20, 30, 0]), canvas_point(page, [180, 30, 0]))
    page.wait_for_function("() => window.vetpacsLight.measurements().length === 2")
    values = sorted(m["value"] for m in page.evaluate("window.vetpacsLight.measurements()"))
    units = {m["unit"] for m in page.evaluate("window.vetpacsLight.measurements()")}
    assert units == {"mm"}
    assert abs(values[0] - UNCALIBRATED_MARKER_PX * 0.5) < 1.0 and abs(values[1] - 80) < 1.0, values
    assert "已校准" in page.locator("#measure-result").inner_text()


@pytest.mark.requirement("R-6.2.2f")
def test_magnifier_shows_an_enlarged_patch_while_pressed_and_goes_on_release(demo_desktop, web_server):
    page = demo_desktop
    open_light(page, web_server, CALIBRATION_STUDY)
    page.locator("#tools button[data-mode=magnify]").click()
    x, y = canvas_point(page, [25, 50, 0])  # the left marker
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2, y + 2, steps=3)
    lens = page.locator("#viewport .magnifyTool")
    try:
        lens.wait_for(state="visible")
        page.wait_for_timeout(300)  # the lens draws its own stack
        box = lens.bounding_box()
        assert box["width"] >= 100 and box["height"] >= 100
        inside = grey(lens.screenshot())
        assert distinct_colours(lens.screenshot()) > 5, "the magnifier is blank"
        # The marker under the lens is drawn larger than its twin on the image outside it.
        canvas = grey(page.locator("#viewport canvas").first.screenshot())
        twin = (canvas[:, canvas.shape[1] // 2 :] > 245).sum()
        assert (inside > 245).sum() > 2 * twin > 0
    finally:
        page.mouse.up()
    expect_gone = page.locator("#viewport .magnifyTool")
    expect_gone.wait_for(state="detached")


@pytest.mark.requirement("R-6.2.2d")
@pytest.mark.requirement("R-6.2.2f")
def test_swiping_on_a_phone_pages_through_the_images(phone, web_server):
    page = phone
    open_light(page, web_server, VIEWER_STUDY)
    assert page.viewport_size == {"width": 390, "height": 844}
    assert page.evaluate("window.vetpacsLight.state().imageIndex") == 0
    page.locator("#tools button[data-mode=scroll]").tap()
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    # Cornerstone's stack scroll: a finger moving down the screen goes forward, about an eighth of
    # the viewport's height per image.
    touch(cdp, "touchStart", [(cx, cy - 150)])
    for i in range(1, 21):
        touch(cdp, "touchMove", [(cx, cy - 150 + 15 * i)])
    touch(cdp, "touchEnd", [])
    page.wait_for_timeout(300)
    index = page.evaluate("window.vetpacsLight.state().imageIndex")
    assert 0 < index < STACK_IMAGES, index
    assert f"{index + 1}/{STACK_IMAGES}" in page.locator("#overlay-tl").inner_text()
