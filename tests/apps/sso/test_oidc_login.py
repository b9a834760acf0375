"""Single sign-on against a real OpenID Connect provider (npm oidc-provider) started by the test."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from vetpacs.apps.accounts import services as accounts
from vetpacs.apps.accounts.models import AccountProfile, email_index

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_DIR = Path(os.environ.get("VETPACS_OIDC_PROVIDER_DIR", ROOT / "build" / "oidc-test-provider"))
CLIENT_ID, CLIENT_SECRET = "vetpacs-clinic", "test-client-secret-0123456789"  # noqa: S105
PROVIDER_ID = "anxin-sso"
IDP_PASSWORD = "correct-horse"  # noqa: S105 - what the test provider accepts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def identity_provider(live_server) -> Iterator[str]:
    """The provider running on a free loopback port; yields its issuer URL."""
    subprocess.run([str(ROOT / "scripts" / "install-oidc-test-provider.sh")], check=True, timeout=300)
    env = {
        **os.environ,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": f"{live_server.url}/accounts/oidc/{PROVIDER_ID}/login/callback/",
        "OIDC_PORT": "0",
    }
    proc = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=PROVIDER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.match(r"listening (http://127\.0\.0\.1:\d+)", line)
        assert match, f"the OIDC provider did not start: {line!r}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def clinic_with_sso(identity_provider):
    from vetpacs.apps.orgs.services import create_organisation
    from vetpacs.apps.sso.services import configure_oidc

    clinic = create_organisation(name="安心宠物医院 SSO")
    configure_oidc(
        organisation=clinic,
        provider_id=PROVIDER_ID,
        name="安心集团统一认证",
        server_url=identity_provider,
        client_id=CLIENT_ID,
        secret=CLIENT_SECRET,
    )
    return clinic


def sign_in(live_server, login: str, password: str) -> requests.Response:
    """The browser's round trip: our confirmation POST, the provider's login form, back to us."""
    session = requests.Session()
    start = f"{live_server.url}/accounts/oidc/{PROVIDER_ID}/login/"
    page = session.get(start, timeout=30)
    assert page.status_code == 200, page.text[:500]
    resp = session.post(start, data={"csrfmiddlewaretoken": session.cookies["csrftoken"]}, timeout=30)
    assert "/interaction/" in resp.url, f"not sent to the provider's login: {resp.url}"
    uid = re.search(r"/interaction/([^/?]+)", resp.url).group(1)
    idp = resp.url.split("/interaction/")[0]
    resp = session.post(
        f"{idp}/interaction/{uid}/login", data={"login": login, "password": password}, timeout=30
    )
    resp.session = session  # type: ignore[attr-defined]
    return resp


@pytest.mark.requirement("R-8.2d")
def test_a_clinic_user_signs_in_through_the_clinics_provider_and_becomes_a_member(
    live_server, clinic_with_sso
):

    from vetpacs.apps.audit.models import AuditEvent
    from vetpacs.apps.orgs.models import Membership

    resp = sign_in(live_server, "dr.chen", IDP_PASSWORD)
    assert resp.status_code == 200, resp.text[:800]
    assert resp.url.rstrip("/") == live_server.url, f"ended at {resp.url}"
    assert "/login/" not in resp.url
    user = accounts.user_by_email("dr.chen@idp.example.cn")  # the address is kept sealed
    assert user is not None and user.email == ""
    membership = Membership.objects.get(user=user)
    assert membership.organisation_id == clinic_with_sso.id
    assert membership.role == "referring_vet"
    assert AuditEvent.objects.filter(
        action="sso.user_provisioned", organisation_id=clinic_with_sso.id
    ).exists()
    # The session is a real login: a page behind login answers with the user's name.
    assert user.username in resp.session.get(f"{live_server.url}/", timeout=30).text

    # A second sign-in finds the same account and membership.
    again = sign_in(live_server, "dr.chen", IDP_PASSWORD)
    assert again.url.rstrip("/") == live_server.url
    assert AccountProfile.objects.filter(email_index=email_index("dr.chen@idp.example.cn")).count() == 1
    assert Membership.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(action="sso.logged_in").count() == 2


def test_a_wrong_password_at_the_provider_signs_nobody_in(live_server, clinic_with_sso):

    resp = sign_in(live_server, "dr.chen", "wrong")
    assert resp.status_code == 401
    assert accounts.user_by_email("dr.chen@idp.example.cn") is None


@pytest.mark.requirement("R-8.2d")
def test_a_provider_of_no_organisation_cannot_create_accounts(live_server, identity_provider):
    from allauth.socialaccount.models import SocialApp

    SocialApp.objects.create(
        provider="openid_connect",
        provider_id=PROVIDER_ID,
        name="unlinked",
        client_id=CLIENT_ID,
        secret=CLIENT_SECRET,
        settings={"server_url": identity_provider, "token_auth_method": "client_secret_basic"},
    )
    resp = sign_in(live_server, "stranger", IDP_PASSWORD)
    assert accounts.user_by_email("stranger@idp.example.cn") is None
    assert resp.url.rstrip("/") != live_server.url
