"""Headless Chromium (Debian's, never a downloaded one) against a real `vetpacs serve` with the demo data."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import LiveServer, start_live_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_USER, DEMO_PASSWORD = "demo", "demo-Passw0rd!"
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture(scope="session")
def ohif_installed() -> None:
    """The viewer build (idempotent: returns at once when the pinned version is there)."""
    subprocess.run([str(ROOT / "scripts" / "fetch-ohif.sh")], check=True, timeout=600)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory, ohif_installed) -> Iterator[LiveServer]:
    """A real platform process with `vetpacs demo` loaded, the way `make run` starts one."""
    server, database = start_live_server(tmp_path_factory.mktemp("browser"))
    try:
        server.run_cli("demo", "--url", server.url)
        yield server
    finally:
        server.stop()
        database.drop()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(page, base_url: str, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
