"""Headless Chromium (Debian's, never a downloaded one) against a real `vetpacs serve` with the demo data."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: F401 - used by this folder's tests
from tests.interop.conftest import LiveServer, live_platform

ROOT = Path(__file__).resolve().parents[2]
DEMO_USER, DEMO_PASSWORD = "demo", "demo-Passw0rd!"
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture(scope="session")
def ohif_installed() -> None:
    """The viewer build (idempotent: returns at once when the pinned version is there)."""
    subprocess.run([str(ROOT / "scripts" / "fetch-ohif.sh")], check=True, timeout=600)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory, ohif_installed) -> Iterator[LiveServer]:
    """A real platform process with `vetpacs demo` loaded, the way `make run` starts one."""
    with live_platform(tmp_path_factory.mktemp("browser")) as (server, database):
        server.run_cli("demo", "--url", server.url)
        yield server


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


PHONE = {"width": 390, "height": 844}
DEMO_CLINIC = "安心宠物医院 (演示) Demo Clinic"
# Makes a session for a user straight in the server's database, the way Client.force_login does, so
# the pages' tests do not depend on the login form.
_SESSION_CODE = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
user = get_user_model().objects.get(username={username!r})
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.save()
print(settings.SESSION_COOKIE_NAME, session.session_key)
"""


_ROLE_USER_CODE = """
from django.contrib.auth import get_user_model
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import create_user
if not get_user_model().objects.filter(username={username!r}).exists():
    create_user(username={username!r}, password="Pw-" + {username!r} + "-0!",
                organisation=Organisation.objects.get(name={organisation!r}), role={role!r})
"""


def role_user(server: LiveServer, role: str, organisation: str = DEMO_CLINIC, username: str = "") -> str:
    """A user of the demo clinic holding one role (made once per server); returns the username."""
    username = username or f"demo-{role.replace('_', '-')}"
    server.run_cli(
        "shell", "-c", _ROLE_USER_CODE.format(username=username, role=role, organisation=organisation)
    )
    return username


def session_cookie(server: LiveServer, username: str = DEMO_USER) -> dict:
    out = server.run_cli("shell", "-c", _SESSION_CODE.format(username=username)).stdout.split()
    name, key = out[-2], out[-1]
    return {"name": name, "value": key, "url": server.url}


@pytest.fixture(scope="session")
def light_viewer_built() -> None:
    """The light viewer and the pages' htmx/ECharts (idempotent: nothing to do when up to date)."""
    subprocess.run([str(ROOT / "scripts" / "build-light-viewer.sh")], check=True, timeout=900)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory, ohif_installed, light_viewer_built) -> Iterator[LiveServer]:
    """A server of its own with the demo, a synthetic radiograph of known pixel spacing and a prior
    of the same animal (the demo server's three studies stay as other tests count them)."""
    from tests.browser.images import calibration_radiograph, prior_thorax
    from tests.builders.dicom import write

    with live_platform(tmp_path_factory.mktemp("web")) as (server, database):
        server.run_cli("demo", "--url", server.url)
        folder = tmp_path_factory.mktemp("web-data")
        for ds in (calibration_radiograph(), prior_thorax()):
            write(ds, folder)
        server.run_cli("import", str(folder), "--org", DEMO_CLINIC)
        yield server


def signed_in_context(
    browser, server: LiveServer, *, language: str = "zh-hans", phone: bool = False, username: str = DEMO_USER
):
    """A browser context with a user's session (the demo user's unless named) and the page language."""
    options: dict = {"viewport": DESKTOP}
    if phone:
        options = {"viewport": PHONE, "is_mobile": True, "has_touch": True}
    context = browser.new_context(locale="zh-CN" if language.startswith("zh") else "en-US", **options)
    context.add_cookies(
        [session_cookie(server, username), {"name": "django_language", "value": language, "url": server.url}]
    )
    return context


@pytest.fixture(params=["zh-hans", "en"], ids=["zh", "en"])
def signed_in_page(request, browser, web_server) -> Iterator:
    context = signed_in_context(browser, web_server, language=request.param)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.language = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def phone_page(browser, web_server) -> Iterator:
    context = signed_in_context(browser, web_server, phone=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
