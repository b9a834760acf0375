"""Screenshots of the login, worklist, study, each role's dashboard and both viewers, desktop and phone."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, role_user, session_cookie  # noqa: E402
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


def wait_for_light_viewer(page) -> None:
    page.wait_for_function("() => window.vetpacsLight && window.vetpacsLight.state().firstImageMs !== null")
    page.wait_for_timeout(500)


# The dashboard opens on a different panel per role; the demo user is the clinic's administrator.
DASHBOARD_ROLES = ("radiologist", "technician", "auditor")


def shoot_dashboard(page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/dashboard/")
    for i in range(page.locator("[data-chart]").count()):
        page.locator("[data-chart]").nth(i).locator("svg").wait_for()
    page.wait_for_timeout(800)  # the charts' entry animation
    save(page.screenshot(full_page=True), name)


def shoot_dashboards(browser, server) -> None:
    """Each role's dashboard, desktop and phone (`screenshots.py dashboard` makes only these)."""
    for screen, options in SCREENS.items():
        context = browser.new_context(locale="zh-CN", **options)
        page = context.new_page()
        page.set_default_timeout(30_000)
        context.add_cookies([session_cookie(server)])
        shoot_dashboard(page, server.url, f"{screen}-dashboard")
        if screen == "desktop":  # one failed sign-in, so the auditor's panel shows a security event
            guest = browser.new_context(locale="zh-CN")
            login = guest.new_page()
            login.goto(f"{server.url}/login/")
            login.fill("#id_username", "demo")
            login.fill("#id_password", "not-the-password")
            login.click("button[type=submit]")
            guest.close()
        for role in DASHBOARD_ROLES:
            context.add_cookies([session_cookie(server, role_user(server, role))])
            shoot_dashboard(page, server.url, f"{screen}-dashboard-{role.replace('_', '-')}")
        context.close()


def shoot(browser, server) -> None:
    base_url = server.url
    dx = server.run_cli(
        "shell", "-c",
        "from vetpacs.apps.archive.models import Study;"
        "print(Study.objects.get(accession_number='DEMO-DX-1').study_instance_uid)",
    ).stdout.split()[-1]  # fmt: skip
    for screen, options in SCREENS.items():
        context = browser.new_context(locale="zh-CN", **options)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{base_url}/login/")
        save(page.screenshot(), f"{screen}-login")
        # The pages below are shot signed in by a session cookie (the login form has its own shot).
        context.add_cookies([session_cookie(server)])
        page.goto(f"{base_url}/")
        save(page.screenshot(full_page=True), f"{screen}-worklist")
        page.goto(f"{base_url}/studies/{dx}/")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#series img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        save(page.screenshot(full_page=True), f"{screen}-study")
        page.goto(f"{base_url}/m/?study={dx}")
        wait_for_light_viewer(page)
        save(page.screenshot(), f"{screen}-light-viewer")
        page.goto(f"{base_url}/")
        page.locator("tr[data-study]", has_text="DX").locator("a.open-viewer").click()
        page.wait_for_url(re.compile(r"/viewer/viewer"))
        wait_for_image(page)
        save(page.screenshot(), f"{screen}-viewer")
        context.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    subprocess.run([str(ROOT / "scripts" / "fetch-ohif.sh")], check=True)
    subprocess.run([str(ROOT / "scripts" / "build-light-viewer.sh")], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vetpacs-screens-") as tmp:
        server, database = start_live_server(Path(tmp))
        try:
            server.run_cli("demo", "--url", server.url)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    if "dashboard" not in sys.argv[1:]:
                        shoot(browser, server)
                    shoot_dashboards(browser, server)
                finally:
                    browser.close()
        finally:
            server.stop()
            database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
