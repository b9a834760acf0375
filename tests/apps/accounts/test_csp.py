"""CSP without 'unsafe-inline' for scripts: each answer's own nonce, carried by every inline script of
our pages, and no inline event handlers left in any template (R-7.3.4.2a)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.builders.dicom import image
from tests.web.conftest import session_client
from vetpacs.apps.accounts import middleware

pytestmark = pytest.mark.django_db

SRC = Path(__file__).resolve().parents[3] / "src" / "vetpacs"
_SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
# on*= handlers (onclick, onchange, onsubmit...) are inline scripts a nonce cannot allow.
_HANDLER = re.compile(r"""<[a-z][^>]*\son[a-z]+\s*=\s*["']""", re.IGNORECASE)


def _script_src(csp: str) -> str:
    return next(d for d in csp.split("; ") if d.startswith("script-src ")).removeprefix("script-src ")


def _nonce(csp: str) -> str:
    match = re.search(r"'nonce-([A-Za-z0-9_-]+)'", _script_src(csp))
    assert match, csp
    return match.group(1)


@pytest.fixture
def admin_client(clinic, ingest):
    from vetpacs.apps.orgs.services import create_user

    ingest(image(animal="旺财"))
    user = create_user(
        username="admin-csp", password="Pw-admin-csp-0!", organisation=clinic, role="org_admin"
    )
    return session_client(user)


@pytest.mark.requirement("R-7.3.4.2a")
def test_pages_allow_only_scripts_of_our_origin_and_of_their_own_nonce(admin_client, client):
    from vetpacs.apps.archive.models import Study

    study = Study.objects.get()
    pages = [
        (client, "/login/"),
        (client, "/accounts/password/reset/"),
        (admin_client, "/"),
        (admin_client, f"/studies/{study.study_instance_uid}/"),
        (admin_client, "/dashboard/"),
        (admin_client, "/accounts/manage/"),
        (admin_client, "/accounts/manage/review/"),
        (admin_client, "/appkeys/"),
        (admin_client, "/devices/"),
    ]
    for caller, url in pages:
        resp = caller.get(url)
        assert resp.status_code == 200, url
        csp = resp["Content-Security-Policy"]
        sources = _script_src(csp)
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, url
        nonce = _nonce(csp)
        html = resp.content.decode()
        for attrs in _SCRIPT.findall(html):
            if "src=" in attrs or "application/json" in attrs:
                continue  # a file of our origin, or data (json_script) that never runs
            assert f'nonce="{nonce}"' in attrs, f"{url}: inline <script{attrs}> without this answer's nonce"
        assert not _HANDLER.search(html), f"{url}: inline event handler {_HANDLER.search(html).group(0)!r}"


def test_every_answer_gets_a_new_nonce(client):
    first, second = (_nonce(client.get("/login/")["Content-Security-Policy"]) for _ in range(2))
    assert first != second and len(first) >= 20


def test_no_template_carries_an_inline_event_handler():
    offenders = [
        f"{path.relative_to(SRC)}: {match.group(0)}"
        for path in SRC.rglob("*.html")
        for match in _HANDLER.finditer(path.read_text())
    ]
    assert not offenders


def test_the_viewers_keep_their_own_policy_without_a_nonce():
    viewer = middleware.content_security_policy("/viewer/viewer", "abc")
    # A nonce would make the browser ignore 'unsafe-inline', which OHIF's page needs.
    assert "'nonce-" not in viewer and "'unsafe-inline'" in _script_src(viewer)
    assert _script_src(middleware.content_security_policy("/", "abc")) == "'self' 'nonce-abc'"
