"""Every signed-in page carries the same header: the worklist, the dashboard and the administration
pages the user may open, in the language they chose, the page they are on marked."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

ADMIN_PAGES = ("/accounts/manage/", "/devices/", "/appkeys/", "/audit/")


def _header(html: str) -> str:
    return html.split("<header>", 1)[1].split("</header>", 1)[0]


def _links(header: str) -> dict[str, str]:
    """The header's navigation links, href -> label."""
    nav = header.split("<nav>", 1)[1].split("</nav>", 1)[0] if "<nav>" in header else ""
    return {
        re.search(r'href="([^"]+)"', attrs).group(1): label
        for attrs, label in re.findall(r"<a ([^>]*)>([^<]+)</a>", nav)
    }


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_an_administration_page_has_the_header_of_the_worklist(clinic_user_client, page):
    resp = clinic_user_client.get(page)
    assert resp.status_code == 200
    header = _header(resp.content.decode())
    assert _links(header) == {
        "/": "检查列表",
        "/dashboard/": "工作台",
        "/accounts/manage/": "成员与角色",
        "/devices/": "网关",
        "/appkeys/": "应用密钥",
        "/audit/": "审计日志",
    }
    active = re.findall(r'<a class="admin active" href="([^"]+)"', header)
    assert active == [page]


def test_the_header_follows_the_language_chosen(clinic_user_client):
    clinic_user_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    header = _header(clinic_user_client.get("/audit/").content.decode())
    links = _links(header)
    assert links["/"] == "Worklist" and links["/audit/"] == "Audit log"
    assert '<button name="language" value="en" disabled>English</button>' in header


def test_a_radiologist_is_offered_no_administration_page(radiologist_client):
    header = _header(radiologist_client.get("/").content.decode())
    assert set(_links(header)) == {"/", "/dashboard/"}


def test_the_login_message_is_shown_once_on_the_next_page(radiologist_client):
    from django.test import Client

    browser = Client()
    resp = browser.post("/login/", {"username": "rad-wang", "password": "Pw-rad-wang-0!"})
    assert resp.status_code == 302, resp.content[:500]
    first = browser.get(resp["Location"]).content.decode()
    assert first.count('<div class="flash" role="status">') == 1 and "rad-wang" in first.split("<main>")[0]
    again = browser.get("/dashboard/").content.decode()
    assert '<div class="flash"' not in again


def _login_flash(browser, username: str) -> str:
    resp = browser.post("/login/", {"username": username, "password": f"Pw-{username}-0!"})
    assert resp.status_code == 302
    html = browser.get(resp["Location"]).content.decode()
    return html.split('<div class="flash" role="status">', 1)[1].split("</div>", 1)[0]


def test_djangos_own_messages_speak_the_language_chosen_not_the_browsers(radiologist_client):
    from django.test import Client

    # A clinic computer set up in English, the switch never touched: Chinese, as every page's labels.
    english_browser = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    flash = _login_flash(english_browser, "rad-wang")
    assert "rad-wang" in flash and "Successfully" not in flash
    # English chosen with the switch: English.
    chosen = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    chosen.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert "Successfully signed in as rad-wang" in _login_flash(chosen, "rad-wang")
