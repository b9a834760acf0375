"""In the browser: log in, find the demo studies, open one in OHIF and see the image (R-6.2.2c)."""

from __future__ import annotations

import io
import re

import pytest

from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Transfer syntaxes a displayed frame may arrive in (R-7.1.5: never a lossy one).
LOSSLESS = {
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
}


def test_login_page_speaks_chinese(page, demo_server):
    page.goto(f"{demo_server.url}/login/")
    assert "登录" in page.title()
    assert page.locator("label[for=id_username]").inner_text().startswith("用户名")
    assert page.locator("label[for=id_password]").inner_text().startswith("密码")
    assert page.locator("html").get_attribute("lang").lower().startswith("zh")


def test_wrong_password_is_refused_with_a_message(page, demo_server):
    log_in(page, demo_server.url, password="not-the-password")
    assert "/login/" in page.url
    error = page.locator(".errors")
    assert "用户名或密码错误" in error.inner_text()
    assert "Wrong username or password" in error.inner_text()


def test_studies_page_lists_the_demo_studies(page, demo_server):
    log_in(page, demo_server.url)
    page.wait_for_url(f"{demo_server.url}/")
    rows = page.locator("tr[data-study]")
    assert rows.count() == 3
    text = page.locator("table").inner_text()
    assert "旺财" in text and "咪咪" in text


@pytest.mark.requirement("R-6.2.2c")
@pytest.mark.requirement("R-7.1.5")
def test_opening_a_study_shows_the_radiograph_in_ohif(page, demo_server):
    frames: list[str] = []

    def on_response(resp) -> None:
        if "/dicomweb/" in resp.url and "/frames/" in resp.url:
            frames.append(resp.headers.get("content-type", ""))

    page.on("response", on_response)
    log_in(page, demo_server.url)
    page.wait_for_url(f"{demo_server.url}/")
    row = page.locator("tr[data-study]", has_text="DX")
    row.locator("a.open-viewer").click()
    page.wait_for_url(re.compile(r"/viewer/viewer\?StudyInstanceUIDs="))

    canvas = page.locator("canvas.cornerstone-canvas").first
    canvas.wait_for(state="visible", timeout=60_000)
    spread = 0.0
    for _ in range(60):  # the image arrives after the page: poll until it is drawn
        spread = _pixel_spread(canvas.screenshot())
        if spread > 20:
            break
        page.wait_for_timeout(500)
    assert spread > 20, "the viewport stayed blank"

    # OHIF speaks Chinese (?lng=zh) and fetched raw frames over WADO-RS, lossless.
    assert frames, "no WADO-RS frame was requested"
    for content_type in frames:
        syntax = re.search(r"transfer-syntax=\"?([0-9.]+)", content_type)
        assert syntax is None or syntax.group(1) in LOSSLESS, content_type


def _pixel_spread(png: bytes) -> float:
    """Standard deviation of the grey levels: 0 for a blank (black or flat) viewport."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    return float(grey.std())
