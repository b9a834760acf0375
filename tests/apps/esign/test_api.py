"""A signed-in radiologist verifies their real name over the JSON API and sees it masked."""

import pytest
from django.test import Client

from vetpacs.apps.orgs.services import create_user

pytestmark = pytest.mark.django_db
PASSWORD = "Vp!x7Kq#2wLz"  # noqa: S105


@pytest.mark.requirement("R-6.2.7a")
def test_a_user_verifies_their_real_name_and_gets_a_signing_key(clinic):
    client = Client()
    client.force_login(
        create_user(username="dr_li", password=PASSWORD, organisation=clinic, role="radiologist")
    )
    assert client.get("/api/v1/real-name/me").json()["verified"] is False
    resp = client.post(
        "/api/v1/real-name/me",
        {"name": "李娜", "id_number": "11010519491231002X"},
        content_type="application/json",
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["verified"] is True
    assert body["name"] == "李*" and body["id_number"] == "110***********002X"
    assert len(body["key_fingerprint"]) == 64


def test_a_wrong_check_digit_is_named_in_the_answer(clinic):
    client = Client()
    client.force_login(
        create_user(username="dr_li", password=PASSWORD, organisation=clinic, role="radiologist")
    )
    resp = client.post(
        "/api/v1/real-name/me",
        {"name": "李娜", "id_number": "110105194912310021"},
        content_type="application/json",
    )
    assert resp.status_code == 400
    assert "校验码" in resp.json()["detail"]


def test_a_bearer_token_is_not_a_person(clinic_client):
    resp = clinic_client.post(
        "/api/v1/real-name/me",
        {"name": "李娜", "id_number": "11010519491231002X"},
        content_type="application/json",
    )
    assert resp.status_code == 403
