"""In the browser: an auditor searches the audit log in Chinese and exports it (R-7.3.3c)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import DESKTOP, PHONE, session_cookie
from vetpacs.web.management.commands.demo import CLINIC

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AUDITOR, PASSWORD = "shenji-auditor", "Shen!Ji7xq-audit"


def shoot(page, tmp_path: Path, name: str) -> None:
    """Desktop and phone screenshots (kept under VETPACS_SCREENSHOTS when set, to look at)."""
    folder = Path(os.environ.get("VETPACS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


@pytest.mark.requirement("R-7.3.3c")
def test_an_auditor_finds_the_imports_of_the_demo_and_downloads_them_as_csv(browser, demo_server, tmp_path):
    demo_server.run_cli("create-user", AUDITOR, "--org", CLINIC, "--password", PASSWORD, "--role", "auditor")
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN", accept_downloads=True)
    context.add_cookies([session_cookie(demo_server, AUDITOR)])
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{demo_server.url}/audit/")
        assert page.locator("h1").inner_text().startswith("审计日志")
        page.fill("input[name=action]", "user.created")
        page.click("text=查询 Search")
        rows = page.locator("tbody tr")
        assert rows.count() >= 1
        assert "user.created" in rows.first.inner_text()
        shoot(page, tmp_path, "audit-search")
        with page.expect_download() as download:
            page.click("text=导出 CSV")
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert text.splitlines()[0].startswith("id,at,action")
        assert "user.created" in text
    finally:
        context.close()


@pytest.mark.requirement("R-7.3.4.3a")
def test_an_admin_issues_an_application_key_and_sees_its_secret_once(browser, demo_server, tmp_path):
    admin = "keys-admin"
    demo_server.run_cli("create-user", admin, "--org", CLINIC, "--password", PASSWORD, "--role", "org_admin")
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    context.add_cookies([session_cookie(demo_server, admin)])
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{demo_server.url}/appkeys/")
        page.fill("input[name=name]", "医院HIS")
        page.check("input[value='dicomweb.read']")
        page.check("input[value='api.read']")
        page.click("text=签发密钥 Issue key")
        assert "不再显示" in page.locator("#secret").inner_text()
        assert "sk_" in page.locator("#secret").inner_text()
        shoot(page, tmp_path, "appkeys")
        page.goto(f"{demo_server.url}/appkeys/")
        assert page.locator("#secret").count() == 0
        assert "医院HIS" in page.locator("tbody").inner_text()
    finally:
        context.close()
