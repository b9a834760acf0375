"""On a phone the administration pages fit the screen: each table row a card, nothing to scroll sideways."""

from __future__ import annotations

import pytest

from tests.browser.conftest import DEMO_CLINIC, PHONE, signed_in_context
from tests.interop.conftest import live_platform

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = (
    "/accounts/manage/",
    "/accounts/manage/roles/",
    "/accounts/manage/review/",
    "/accounts/manage/security/",
    "/appkeys/",
    "/devices/",
    "/audit/",
)
# A member besides the administrator, an application key and a gateway: every table has rows to show.
FILL = f"""
from vetpacs.apps.appkeys.services import issue_key
from vetpacs.apps.devices import services as devices
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import create_user
org = Organisation.objects.get(name={DEMO_CLINIC!r})
create_user(username="li.radiology", password="Li-Passw0rd!long", organisation=org, role="radiologist")
issue_key(organisation=org, name="HIS 医院信息系统", scopes=["api.read", "dicomweb.read", "dicomweb.write"])
devices.register_gateway(
    organisation_id=org.id, name="放射科前置机 X-ray room", actor=devices.Actor(user_id=None, label="test")
)
"""
TOO_WIDE = """() => [...document.querySelectorAll('table')]
    .map(t => t.getBoundingClientRect().right)
    .filter(right => right > window.innerWidth + 1)"""


def test_the_administration_tables_fit_a_phone_screen(browser, tmp_path):
    with live_platform(tmp_path / "platform") as (server, database):
        server.run_cli("demo", "--url", server.url)
        server.run_cli("shell", "-c", FILL)
        context = signed_in_context(browser, server, phone=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        for path in PAGES:
            assert page.goto(server.url + path).status == 200, path
            assert page.locator("tbody tr").count() >= 1, path
            assert page.evaluate(TOO_WIDE) == [], f"{path}: a table runs past the {PHONE['width']} px screen"
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        context.close()
