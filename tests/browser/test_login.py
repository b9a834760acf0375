"""In the browser, in Chinese: an administrator logs in, is made to set up TOTP, then logs in with
password and a TOTP code (R-6.2.6.3, R-7.3.2.1a)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyotp
import pytest

from tests.browser.conftest import log_in
from vetpacs.web.management.commands.demo import CLINIC

pytestmark = [pytest.mark.browser, pytest.mark.slow]

USERNAME, PASSWORD = "mfa-admin", "Sheng!Kou7xq"
PHONE = {"width": 390, "height": 844}


def shoot(page, tmp_path: Path, name: str) -> None:
    """Desktop and phone screenshots (kept under VETPACS_SCREENSHOTS when set, to look at)."""
    folder = Path(os.environ.get("VETPACS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size)


def fresh_code(secret: str, used_window: int | None) -> str:
    """A code of a 30 s window not used before: allauth refuses a TOTP code a second time."""
    totp = pyotp.TOTP(secret)
    while used_window is not None and int(time.time() // 30) == used_window:
        time.sleep(0.5)
    return totp.now()


@pytest.mark.requirement("R-6.2.6.3")
def test_administrator_sets_up_totp_then_logs_in_with_a_code_in_chinese(page, demo_server, tmp_path):
    demo_server.run_cli(
        "create-user", USERNAME, "--org", CLINIC, "--password", PASSWORD, "--role", "org_admin"
    )

    page.goto(f"{demo_server.url}/login/")
    assert page.locator("html").get_attribute("lang").lower().startswith("zh")
    shoot(page, tmp_path, "login")
    log_in(page, demo_server.url, USERNAME, PASSWORD)

    # An administrator without a second factor goes to its set-up before anything else.
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    body = page.locator("body").inner_text()
    assert "双因素认证" in body or "身份验证器" in body, body[:500]
    page.goto(f"{demo_server.url}/")
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    shoot(page, tmp_path, "totp-setup")
    secret = page.locator("#authenticator_secret").input_value()
    assert len(secret) >= 16
    page.fill("#id_code", pyotp.TOTP(secret).now())
    activated_in = int(time.time() // 30)
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/accounts/2fa/totp/activate/" not in page.url

    # Log out, and in again: the password alone is no longer enough.
    page.goto(f"{demo_server.url}/")
    page.locator("header form[action='/logout/'] button").click()
    page.wait_for_url("**/login/**")
    log_in(page, demo_server.url, USERNAME, PASSWORD)
    page.wait_for_url("**/accounts/2fa/authenticate/**")
    shoot(page, tmp_path, "totp-code")
    page.fill("#id_code", "000000")
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/accounts/2fa/authenticate/" in page.url  # a wrong code keeps them out
    page.fill("#id_code", fresh_code(secret, activated_in))
    page.click("main button[type=submit]")
    page.wait_for_url(f"{demo_server.url}/")
    assert USERNAME in page.locator("header").inner_text()
    shoot(page, tmp_path, "after-login")


@pytest.mark.requirement("R-7.3.2.1e")
def test_administrator_pages_read_in_chinese_on_desktop_and_phone(page, demo_server, tmp_path):
    log_in(page, demo_server.url)  # the demo user is the demo clinic's administrator
    page.wait_for_url(f"{demo_server.url}/")
    for path, heading in (
        ("/accounts/manage/", "成员管理"),
        ("/accounts/manage/review/", "权限审查"),
        ("/accounts/manage/roles/", "角色与权限"),
        ("/accounts/manage/security/", "安全事件"),
    ):
        page.goto(f"{demo_server.url}{path}")
        assert heading in page.locator("main h2").first.inner_text()
        shoot(page, tmp_path, path.strip("/").replace("/", "-"))
    page.goto(f"{demo_server.url}/accounts/manage/review/")
    row = page.locator("tr[data-user='demo']")
    assert "机构管理员" in row.inner_text()


@pytest.mark.requirement("R-6.2.6.3")
def test_a_security_key_is_added_and_then_asked_for_at_login(browser, demo_server, tmp_path):
    """WebAuthn with Chromium's virtual authenticator; http://localhost is a secure context and a
    valid relying-party id (an IP address is neither)."""
    demo_server.run_cli(
        "create-user", "key-vet", "--org", CLINIC, "--password", PASSWORD, "--role", "radiologist"
    )
    base = demo_server.url.replace("127.0.0.1", "localhost")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        authenticator = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "usb",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        log_in(page, base, "key-vet", PASSWORD)
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/accounts/2fa/webauthn/add/")
        page.fill("#id_name", "办公室钥匙 Office key")
        page.click("#mfa_webauthn_add")
        page.wait_for_url(lambda url: "/webauthn/add/" not in url)
        shoot(page, tmp_path, "webauthn-added")
        stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]})
        assert len(stored["credentials"]) == 1

        page.goto(f"{base}/")
        page.locator("header form[action='/logout/'] button").click()
        page.wait_for_url("**/login/**")
        log_in(page, base, "key-vet", PASSWORD)
        page.wait_for_url("**/accounts/2fa/authenticate/**")
        page.click("#mfa_webauthn_authenticate")
        page.wait_for_url(f"{base}/")
        assert "key-vet" in page.locator("header").inner_text()
    finally:
        context.close()
