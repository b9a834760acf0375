"""The dashboard of each role in Chromium: its panel, its charts drawn, nothing wider than a phone."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DESKTOP, PHONE, role_user, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# role -> (its panel, its heading in Chinese and English, the charts it draws)
ROLES = {
    "radiologist": ("reading", ("影像诊断", "Reading"), 1),
    "technician": ("desk", ("检查与上传", "Exams and uploads"), 1),
    "org_admin": ("admin", ("机构概况", "Organisation"), 2),
    "auditor": ("security", ("安全事件", "Security events"), 0),
}


@pytest.mark.requirement("R-6.2.2c")
@pytest.mark.requirement("R-6.2.2d")
@pytest.mark.parametrize("screen", ["desktop", "phone"])
@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_sees_its_panel_with_charts_drawn_on_desktop_and_phone(browser, web_server, role, screen):
    panel, heading, charts = ROLES[role]
    language = "zh-hans" if screen == "desktop" else "en"
    options: dict = {"viewport": DESKTOP}
    if screen == "phone":
        options = {"viewport": PHONE, "is_mobile": True, "has_touch": True}
    context = browser.new_context(**options)
    context.add_cookies(
        [
            session_cookie(web_server, role_user(web_server, role)),
            {"name": "django_language", "value": language, "url": web_server.url},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{web_server.url}/dashboard/")
        section = page.locator(f"#panel-{panel}")
        assert section.locator("h3").inner_text() == heading[0 if language == "zh-hans" else 1]
        assert page.locator("section.panel").count() == 1, "a one-role user sees one panel"
        drawn = section.locator("[data-chart]")
        assert drawn.count() == charts
        for i in range(charts):
            drawn.nth(i).locator("svg").wait_for()
            assert drawn.nth(i).locator("svg path, svg rect").count() > 3
        width = options["viewport"]["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    finally:
        context.close()
