"""In Chromium: the pages run under a CSP without 'unsafe-inline' for scripts and show no violation,
and a script injected into a page without the answer's nonce does not run (R-7.3.4.2a)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import DEMO_PASSWORD, DEMO_USER, signed_in_context

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _watch(page) -> list[str]:
    """Console errors and page errors: where Chromium reports a refused script or style."""
    seen: list[str] = []
    page.on("console", lambda msg: seen.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    return seen


def _violations(seen: list[str]) -> list[str]:
    return [text for text in seen if "Content Security Policy" in text]


@pytest.mark.requirement("R-7.3.4.2a")
def test_login_worklist_study_dashboard_and_light_viewer_show_no_csp_violation(browser, web_server):
    anonymous = browser.new_context(locale="zh-CN")
    page = anonymous.new_page()
    seen = _watch(page)
    page.goto(f"{web_server.url}/login/")
    page.fill("#id_username", DEMO_USER)
    page.fill("#id_password", DEMO_PASSWORD)
    assert not _violations(seen), seen
    anonymous.close()

    context = signed_in_context(browser, web_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    seen = _watch(page)
    response = page.goto(f"{web_server.url}/")
    assert (
        "'unsafe-inline'"
        not in response.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    )
    # The worklist's nonce'd script ran: a quick pick reloads the list through htmx.
    page.locator("#quick-range button[data-range]").first.click()
    page.wait_for_load_state("networkidle")
    href = page.locator("a[href^='/studies/']").first.get_attribute("href")
    page.goto(f"{web_server.url}{href}")
    # The share note is toggled by behaviours.js (it was an inline onclick).
    page.click("#share")
    assert "on" in (page.locator("#share-note").get_attribute("class") or "")
    page.wait_for_load_state("networkidle")
    page.goto(f"{web_server.url}/dashboard/")
    page.wait_for_load_state("networkidle")
    study = re.search(r"/studies/([^/]+)/", href).group(1)
    page.goto(f"{web_server.url}/m/?study={study}")
    page.wait_for_load_state("networkidle")
    assert not _violations(seen), seen
    context.close()


@pytest.mark.requirement("R-7.3.4.2a")
def test_an_injected_inline_script_without_the_nonce_is_blocked(browser, web_server):
    context = signed_in_context(browser, web_server)
    page = context.new_page()
    seen = _watch(page)

    def inject(route):
        # What a stored XSS would do: the page comes back with a script we did not write in it.
        response = route.fetch()
        nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
        body = response.text().replace(
            "</body>",
            "<script>window.__injected = 1;</script>"
            '<img src="x" onerror="window.__handler = 1">'
            f'<script nonce="{nonce}">window.__with_nonce = 1;</script></body>',
        )
        route.fulfill(response=response, body=body)

    page.route(f"{web_server.url}/", inject)
    page.goto(f"{web_server.url}/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__injected") is None
    assert page.evaluate("window.__handler") is None
    assert page.evaluate("window.__with_nonce") == 1  # the control: the answer's own nonce runs
    refused = _violations(seen)
    assert any("inline script" in text for text in refused), seen
    assert any("inline event handler" in text for text in refused), seen
    context.close()
