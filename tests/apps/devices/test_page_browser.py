"""The gateways page in Chromium, on a desktop and a phone: status, last contact, the register form."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from vetpacs.apps.devices import services
from vetpacs.apps.orgs.services import create_organisation, create_user

ACTOR = services.Actor(user_id=None, label="test")
SHOTS = Path(os.environ.get("VETPACS_SCREENSHOTS", "")) if os.environ.get("VETPACS_SCREENSHOTS") else None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium"),
]


@pytest.fixture
def signed_in(live_server, transactional_db):
    services.reset_caches()
    clinic = create_organisation(name="安心宠物医院")
    user = create_user(username="admin1", password="x-Very-long-9", organisation=clinic, role="org_admin")
    for name in ("放射科前置机", "超声室前置机"):
        _, code = services.register_gateway(organisation_id=clinic.id, name=name, actor=ACTOR)
        secret = services.enrol(code=code, hostname=f"{name}-pc", version="0.1.0")["secret"]
        if name == "放射科前置机":
            services.heartbeat(
                secret=secret, status={"queue_depth": 12, "failures": 1, "disk_free_bytes": 8 * 10**10}
            )
    client = Client()
    client.force_login(user)
    cookie = {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
    }
    yield live_server.url, cookie
    services.reset_caches()


@pytest.mark.parametrize(
    ("viewport", "label"),
    [({"width": 1440, "height": 900}, "desktop"), ({"width": 390, "height": 844}, "phone")],
)
def test_gateways_page_shows_online_and_offline_gateways(signed_in, browser, viewport, label, tmp_path):
    url, cookie = signed_in
    try:
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        context.add_cookies([{**cookie, "url": url}])
        page = context.new_page()
        page.goto(f"{url}/devices/")
        assert page.get_by_test_id("online-count").inner_text() == "1"
        assert page.get_by_test_id("offline-count").inner_text() == "1"
        assert page.get_by_text("在线 Online").first.is_visible()
        page.fill("#gw-name", "门诊前置机")
        page.get_by_role("button", name="注册 Register").click()
        assert page.get_by_test_id("new-code").is_visible()
        shot = (SHOTS or tmp_path) / f"devices-{label}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        # nothing on the page is wider than the screen (the table scrolls inside its box)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    finally:
        context.close()
