"""Organisation admins issue, rotate and revoke application keys over the JSON API."""

from __future__ import annotations

import pytest
from django.test import Client

from vetpacs.apps.appkeys.models import AppKey
from vetpacs.apps.orgs.services import create_user

pytestmark = pytest.mark.django_db
PASSWORD = "Vp!x7Kq#2wLz"  # noqa: S105


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.requirement("R-7.3.4.3a")
def test_an_admin_issues_a_key_and_sees_the_secret_once(clinic):
    admin = logged_in(create_user(username="admin1", password=PASSWORD, organisation=clinic))
    resp = admin.post(
        "/api/v1/appkeys", {"name": "HIS", "scopes": ["dicomweb.read"]}, content_type="application/json"
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["secret"].startswith("sk_")
    listed = admin.get("/api/v1/appkeys").json()
    assert [k["key_id"] for k in listed] == [body["key_id"]]
    assert "secret" not in listed[0]


def test_a_technician_may_not_issue_keys(clinic):
    tech = logged_in(create_user(username="tech1", password=PASSWORD, organisation=clinic, role="technician"))
    resp = tech.post(
        "/api/v1/appkeys", {"name": "x", "scopes": ["api.read"]}, content_type="application/json"
    )
    assert resp.status_code == 403


def test_another_clinics_admin_cannot_revoke_the_key(clinic, other_clinic):
    admin = logged_in(create_user(username="admin1", password=PASSWORD, organisation=clinic))
    key_id = admin.post(
        "/api/v1/appkeys", {"name": "HIS", "scopes": ["api.read"]}, content_type="application/json"
    ).json()["key_id"]
    other = logged_in(create_user(username="admin2", password=PASSWORD, organisation=other_clinic))
    assert other.post(f"/api/v1/appkeys/{key_id}/revoke").status_code == 404
    assert AppKey.objects.get(key_id=key_id).revoked_at is None
    assert admin.post(f"/api/v1/appkeys/{key_id}/revoke").status_code == 200
    assert AppKey.objects.get(key_id=key_id).revoked_at is not None
