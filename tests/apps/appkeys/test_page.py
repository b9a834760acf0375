"""The administrators' page: a key issued shows its secret once; another clinic's key is out of reach."""

import pytest
from django.test import Client

from vetpacs.apps.appkeys import services
from vetpacs.apps.appkeys.models import AppKey
from vetpacs.apps.orgs.services import create_user

pytestmark = pytest.mark.django_db
PASSWORD = "Vp!x7Kq#2wLz"  # noqa: S105


def admin_of(org, name="admin1") -> Client:
    client = Client()
    client.force_login(create_user(username=name, password=PASSWORD, organisation=org))
    return client


@pytest.mark.requirement("R-7.3.4.3a")
def test_an_admin_issues_a_key_and_sees_the_secret_only_on_that_page(clinic):
    admin = admin_of(clinic)
    page = admin.post(
        "/appkeys/", {"action": "issue", "name": "HIS", "scopes": ["dicomweb.read", "api.read"]}
    )
    assert page.status_code == 200
    html = page.content.decode()
    key = AppKey.objects.get()
    assert "不再显示" in html and key.key_id in html
    secret = html.split("Secret <code>")[1].split("</code>")[0]
    assert secret.startswith("sk_")
    assert secret not in admin.get("/appkeys/").content.decode()
    assert key.scopes == ["api.read", "dicomweb.read"]


def test_rotate_and_revoke_from_the_page(clinic):
    admin = admin_of(clinic)
    key, _ = services.issue_key(organisation=clinic, name="HIS", scopes=["api.read"])
    assert "sk_" in admin.post("/appkeys/", {"action": "rotate", "key_id": key.key_id}).content.decode()
    admin.post("/appkeys/", {"action": "revoke", "key_id": key.key_id})
    key.refresh_from_db()
    assert key.revoked_at is not None and key.rotated_at is not None


def test_another_clinics_admin_cannot_revoke_the_key(clinic, other_clinic):
    key, _ = services.issue_key(organisation=clinic, name="HIS", scopes=["api.read"])
    other = admin_of(other_clinic, "admin2")
    assert other.post("/appkeys/", {"action": "revoke", "key_id": key.key_id}).status_code == 404
    assert key.key_id not in other.get("/appkeys/").content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_radiologist_is_refused(clinic):
    client = Client()
    client.force_login(create_user(username="dr", password=PASSWORD, organisation=clinic, role="radiologist"))
    assert client.get("/appkeys/").status_code == 403


def test_no_scope_is_a_clear_error(clinic):
    page = admin_of(clinic).post("/appkeys/", {"action": "issue", "name": "HIS"})
    assert "at least one scope" in page.content.decode()
