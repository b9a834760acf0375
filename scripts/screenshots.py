"""Screenshots of login, studies and the OHIF viewer, desktop and phone, into docs/screenshots/."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402
from tests.interop.conftest import start_live_server  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SCREENS = {
    "desktop": {"viewport": {"width": 1440, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
# Palette PNGs: a tenth of the size of true colour, and screenshots of a UI lose nothing visible.
COLOURS = 256


def save(png: bytes, name: str) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(COLOURS, dither=Image.Dither.NONE)
    path = OUT / f"{name}.png"
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KiB")


def wait_for_image(page) -> None:
    """Until the first viewport shows a drawn image (or 30 s), then a moment for overlays."""
    canvas = page.locator("canvas.cornerstone-canvas").first
    canvas.wait_for(state="visible", timeout=60_000)
    for _ in range(60):
        if len(set(canvas.screenshot()[-4000:])) > 50:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)


def shoot(browser, base_url: str) -> None:
    for screen, options in SCREENS.items():
        context = browser.new_context(locale="zh-CN", **options)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{base_url}/login/")
        save(page.screenshot(), f"{screen}-login")
        log_in(page, base_url)
        page.wait_for_url(f"{base_url}/")
        save(page.screenshot(full_page=True), f"{screen}-studies")
        page.locator("tr[data-study]", has_text="DX").locator("a.open-viewer").click()
        page.wait_for_url(re.compile(r"/viewer/viewer"))
        wait_for_image(page)
        save(page.screenshot(), f"{screen}-viewer")
        context.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    subprocess.run([str(ROOT / "scripts" / "fetch-ohif.sh")], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vetpacs-screens-") as tmp:
        server, database = start_live_server(Path(tmp))
        try:
            server.run_cli("demo", "--url", server.url)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    shoot(browser, server.url)
                finally:
                    browser.close()
        finally:
            server.stop()
            database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
