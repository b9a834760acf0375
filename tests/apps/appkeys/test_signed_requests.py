"""Signed requests with application keys: what a third-party system sees (R-7.3.4.3a/c)."""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
from django.test import Client

from tests.builders import dicom as build
from tests.dicomweb.test_stow import multipart
from vetpacs.apps.appkeys import services, workflow
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.core.errors import VetpacsError

pytestmark = pytest.mark.django_db


def call(
    key_id, secret, method, path, *, query="", body=b"", content_type="", timestamp=None, nonce=None, **extra
):
    """Send one signed request through Django's test client; returns the response."""
    headers = workflow.sign_headers(
        key_id=key_id,
        secret=secret,
        method=method,
        path=path,
        query_string=query,
        body=body,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=nonce or secrets.token_hex(16),
    )
    headers.update(extra.pop("override", {}))
    url = f"{path}?{query}" if query else path
    return Client().generic(method, url, data=body, content_type=content_type, headers=headers, **extra)


@pytest.fixture
def app_key(clinic):
    return services.issue_key(organisation=clinic, name="HIS", scopes=["dicomweb.read", "api.read"])


@pytest.fixture
def stored_study(ingest):
    datasets = build.study(2)
    ingest(*datasets)
    return datasets[0].StudyInstanceUID


@pytest.mark.requirement("R-7.3.4.3a")
def test_a_signed_qido_request_sees_its_own_clinics_study(app_key, stored_study):
    key, secret = app_key
    resp = call(key.key_id, secret, "GET", "/dicomweb/studies", query="limit=10&includefield=all")
    assert resp.status_code == 200, resp.content
    assert [s["0020000D"]["Value"][0] for s in resp.json()] == [stored_study]


@pytest.mark.requirement("R-6.2.9.4b")
def test_a_signed_json_api_request_is_accepted(app_key, stored_study):
    key, secret = app_key
    resp = call(key.key_id, secret, "GET", "/api/v1/studies", query="limit=5")
    assert resp.status_code == 200, resp.content
    assert resp.json()["count"] == 1


def test_a_signed_stow_with_a_body_stores_the_instance(clinic):
    key, secret = services.issue_key(organisation=clinic, name="modality", scopes=["dicomweb.write"])
    body, content_type = multipart(build.to_bytes(build.study(1)[0]))
    resp = call(key.key_id, secret, "POST", "/dicomweb/studies", body=body, content_type=content_type)
    assert resp.status_code == 200, resp.content


def test_a_signed_tus_upload_creation_is_accepted(clinic):
    key, secret = services.issue_key(organisation=clinic, name="gateway", scopes=["uploads.write"])
    resp = call(
        key.key_id,
        secret,
        "POST",
        "/api/v1/uploads/",
        HTTP_TUS_RESUMABLE="1.0.0",
        HTTP_UPLOAD_LENGTH="10",
    )
    assert resp.status_code == 201, resp.content


def test_a_large_signed_body_is_checked_before_the_view_reads_it(clinic, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024  # the instance below is larger: spooled and hashed
    key, secret = services.issue_key(organisation=clinic, name="modality", scopes=["dicomweb.write"])
    body, content_type = multipart(build.to_bytes(build.study(1)[0]))
    assert len(body) > 1024
    resp = call(key.key_id, secret, "POST", "/dicomweb/studies", body=body, content_type=content_type)
    assert resp.status_code == 200, resp.content
    tampered = call(
        key.key_id,
        secret,
        "POST",
        "/dicomweb/studies",
        body=body,
        content_type=content_type,
        override={workflow.BODY_HASH_HEADER: hashlib.sha256(body[:-1]).hexdigest()},
    )
    assert tampered.status_code == 401


@pytest.mark.requirement("R-7.3.4.3c")
def test_a_request_older_than_five_minutes_is_refused_as_expired(app_key):
    key, secret = app_key
    resp = call(key.key_id, secret, "GET", "/dicomweb/studies", timestamp=int(time.time()) - 301)
    assert resp.status_code == 401
    assert "signature_expired" in resp.content.decode()


@pytest.mark.requirement("R-7.3.4.3c")
def test_a_replayed_request_is_refused_the_second_time(app_key):
    key, secret = app_key
    nonce = secrets.token_hex(16)
    now = int(time.time())
    first = call(key.key_id, secret, "GET", "/api/v1/studies", timestamp=now, nonce=nonce)
    again = call(key.key_id, secret, "GET", "/api/v1/studies", timestamp=now, nonce=nonce)
    assert first.status_code == 200
    assert again.status_code == 401
    assert again.json()["type"] == "urn:vetpacs:error:nonce_reused"
    refused = AuditEvent.objects.get(action="appkey.request_refused")
    assert refused.result == "denied" and refused.detail["code"] == "nonce_reused"
    assert refused.organisation_id == key.organisation_id


@pytest.mark.requirement("R-7.3.4.3b")
def test_a_tampered_body_is_refused(clinic):
    key, secret = services.issue_key(organisation=clinic, name="modality", scopes=["dicomweb.write"])
    body, content_type = multipart(build.to_bytes(build.study(1)[0]))
    headers = workflow.sign_headers(
        key_id=key.key_id,
        secret=secret,
        method="POST",
        path="/dicomweb/studies",
        body=body,
        timestamp=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    changed = body.replace(b"DICM", b"DICN", 1)
    resp = Client().post("/dicomweb/studies", data=changed, content_type=content_type, headers=headers)
    assert resp.status_code == 401
    assert "signature_invalid" in resp.content.decode()


def test_a_changed_query_is_refused(app_key):
    key, secret = app_key
    headers = workflow.sign_headers(
        key_id=key.key_id,
        secret=secret,
        method="GET",
        path="/api/v1/studies",
        query_string="limit=1",
        timestamp=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    resp = Client().get("/api/v1/studies?limit=500", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["type"] == "urn:vetpacs:error:signature_invalid"


def test_a_request_signed_with_the_wrong_secret_is_refused(app_key):
    key, _ = app_key
    resp = call(key.key_id, "sk_not-the-secret", "GET", "/api/v1/studies")
    assert resp.status_code == 401
    assert resp.json()["type"] == "urn:vetpacs:error:signature_invalid"


def test_a_revoked_key_is_refused_and_the_revocation_is_audited(app_key):
    key, secret = app_key
    services.revoke_key(key=key, user_id=None)
    resp = call(key.key_id, secret, "GET", "/dicomweb/studies")
    assert resp.status_code == 401
    assert "invalid_app_key" in resp.content.decode()
    assert AuditEvent.objects.filter(action="appkey.revoked", target=f"appkey:{key.key_id}").exists()


def test_rotating_a_key_retires_the_old_secret(app_key):
    key, old = app_key
    new = services.rotate_key(key=key)
    assert call(key.key_id, old, "GET", "/api/v1/studies").status_code == 401
    assert call(key.key_id, new, "GET", "/api/v1/studies").status_code == 200
    assert AuditEvent.objects.filter(action="appkey.rotated").count() == 1


def test_a_key_without_the_write_scope_cannot_store(app_key):
    key, secret = app_key  # dicomweb.read and api.read only
    body, content_type = multipart(build.to_bytes(build.study(1)[0]))
    resp = call(key.key_id, secret, "POST", "/dicomweb/studies", body=body, content_type=content_type)
    assert resp.status_code == 403
    assert "app_key_scope" in resp.content.decode()


def test_another_clinics_key_does_not_see_the_study(other_clinic, stored_study):
    key, secret = services.issue_key(organisation=other_clinic, name="HIS", scopes=["dicomweb.read"])
    assert call(key.key_id, secret, "GET", "/dicomweb/studies").json() in ([], None)
    resp = call(key.key_id, secret, "GET", f"/dicomweb/studies/{stored_study}/metadata")
    assert resp.status_code == 404


def test_the_secret_is_not_stored_in_plain_text(app_key):
    key, secret = app_key
    assert secret.encode() not in bytes(key.sealed_secret)


def test_unknown_scopes_are_refused_by_name(clinic):
    with pytest.raises(VetpacsError, match="dicomweb.delete"):
        services.issue_key(organisation=clinic, name="x", scopes=["dicomweb.delete"])


def test_the_canonical_query_sorts_and_encodes_pairs():
    assert workflow.canonical_query("b=2&a=%E7%8C%AB&a=1&c=") == "a=1&a=%E7%8C%AB&b=2&c="
