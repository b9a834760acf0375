"""In Chromium: the site's icon loads on every kind of page, and no page asks for a file that is not
there (a missing /favicon.ico was a 404 in every page's console)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import signed_in_context

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_pages_and_viewers_load_the_icon_and_nothing_missing(browser, web_server):
    context = signed_in_context(browser, web_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: missing.append(m.text) if "Failed to load resource" in m.text else None)
    for path in ("/login/", "/", "/dashboard/", "/m/"):
        page.goto(f"{web_server.url}{path}")
        page.wait_for_load_state("networkidle")
    assert not missing, missing
    for path, media_type in (("/favicon.ico", "image/"), ("/apple-touch-icon.png", "image/png")):
        answer = page.request.get(f"{web_server.url}{path}")
        assert answer.ok and answer.headers["content-type"].startswith(media_type), path
        assert len(answer.body()) > 100, path
    page.goto(f"{web_server.url}/")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon.startswith("/static/") and page.request.get(f"{web_server.url}{icon}").ok
    context.close()
