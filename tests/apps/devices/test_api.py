"""/api/v1/devices/: gateways enrol and beat over HTTP; admins register and command; other clinics get 404."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.devices.models import Command, Gateway
from vetpacs.apps.orgs.services import create_user


def _post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.mark.requirement("R-8.3a")
def test_admin_registers_gateway_and_the_code_enrols_it(clinic_client, client):
    resp = _post(clinic_client, "/api/v1/devices/gateways", {"name": "DR room"})
    assert resp.status_code == 201, resp.content
    code = resp.json()["enrolment_code"]
    anonymous = Client()
    enrol = _post(anonymous, "/api/v1/devices/enrol", {"code": code, "hostname": "pc-1", "version": "0.1.0"})
    assert enrol.status_code == 201
    assert _post(anonymous, "/api/v1/devices/enrol", {"code": code}).status_code == 403
    secret = enrol.json()["secret"]
    beat = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").post(
        "/api/v1/devices/heartbeat", data=json.dumps({"queue_depth": 2}), content_type="application/json"
    )
    assert beat.status_code == 200 and beat.json()["commands"] == []
    listing = clinic_client.get("/api/v1/devices/gateways").json()
    assert listing["counts"] == {"online": 1, "offline": 0}
    assert listing["gateways"][0]["online"] is True and listing["gateways"][0]["queue_depth"] == 2


def test_heartbeat_without_credentials_is_401(db):
    resp = Client().post("/api/v1/devices/heartbeat", data="{}", content_type="application/json")
    assert resp.status_code == 401
    assert resp["Content-Type"].startswith("application/problem+json")


def test_heartbeat_with_a_body_that_is_not_json_names_the_problem(gateway_client):
    resp = gateway_client.post("/api/v1/devices/heartbeat", data="{oops", content_type="application/json")
    assert resp.status_code == 400 and "not JSON" in resp.json()["detail"]


def test_admin_command_reaches_the_gateway_in_its_next_beat(clinic_client, gateway_client):
    gateway = Gateway.objects.get()
    resp = _post(clinic_client, f"/api/v1/devices/gateways/{gateway.id}/commands", {"kind": "retry_all"})
    assert resp.status_code == 201
    beat = _post(gateway_client, "/api/v1/devices/heartbeat", {})
    assert [c["kind"] for c in beat.json()["commands"]] == ["retry_all"]
    _post(gateway_client, "/api/v1/devices/heartbeat", {"acks": [{"id": resp.json()["id"], "ok": True}]})
    states = clinic_client.get(f"/api/v1/devices/gateways/{gateway.id}/commands").json()["commands"]
    assert states[0]["state"] == "done"


def test_malformed_command_is_refused_with_reason(clinic_client, enrolled):
    gateway = Gateway.objects.get()
    resp = _post(clinic_client, f"/api/v1/devices/gateways/{gateway.id}/commands", {"kind": "send_report"})
    assert resp.status_code == 400 and "url" in resp.json()["detail"]
    assert not Command.objects.exists()


def test_gateway_credentials_cannot_administer(gateway_client):
    gateway = Gateway.objects.get()
    resp = _post(gateway_client, f"/api/v1/devices/gateways/{gateway.id}/commands", {"kind": "retry_all"})
    assert resp.status_code == 403
    assert _post(gateway_client, "/api/v1/devices/gateways", {"name": "rogue"}).status_code == 403


def test_another_clinic_gets_404_for_every_gateway_route(other_clinic_client, enrolled):
    gateway = Gateway.objects.get()
    assert other_clinic_client.get(f"/api/v1/devices/gateways/{gateway.id}").status_code == 404
    assert other_clinic_client.get(f"/api/v1/devices/gateways/{gateway.id}/commands").status_code == 404
    for route in ("commands", "enrolment-code", "revoke"):
        resp = _post(
            other_clinic_client, f"/api/v1/devices/gateways/{gateway.id}/{route}", {"kind": "retry_all"}
        )
        assert resp.status_code == 404, route
    assert other_clinic_client.get("/api/v1/devices/gateways").json()["gateways"] == []
    assert other_clinic_client.get("/api/v1/devices/records").json()["records"] == []


def test_member_without_admin_role_cannot_register(clinic):
    user = create_user(username="tech", password="x-Very-long-9", organisation=clinic, role="technician")
    client = Client()
    client.force_login(user)
    resp = client.post(
        "/api/v1/devices/gateways",
        data=json.dumps({"name": "x"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN="",
    )
    assert resp.status_code == 403


def test_revoked_gateway_is_refused_and_revocation_audited(clinic_client, gateway_client):
    gateway = Gateway.objects.get()
    assert _post(clinic_client, f"/api/v1/devices/gateways/{gateway.id}/revoke", {}).status_code == 204
    assert _post(gateway_client, "/api/v1/devices/heartbeat", {}).status_code == 401
    assert AuditEvent.objects.filter(action="gateway.revoked").exists()


@pytest.mark.requirement("R-6.1.2")
def test_gateway_uploads_records_and_the_clinic_reads_them(gateway_client, clinic_client):
    body = {
        "records": [
            {
                "kind": "patient",
                "source_id": "csv:patients.csv:2",
                "patient_id": "P-1",
                "data": {"patient_name": "Wang^Lucky", "species": "Feline"},
            }
        ]
    }
    assert _post(gateway_client, "/api/v1/devices/records", body).status_code == 201
    rows = clinic_client.get("/api/v1/devices/records?patient_id=P-1").json()["records"]
    assert rows[0]["data"]["species"] == "Feline"


def test_heartbeat_through_the_platforms_wsgi_entry_point_skips_session_middleware(
    transactional_db, enrolled
):
    # Transactional: the handler closes stale connections at the start and end of a request, as served.
    import io
    from wsgiref.util import setup_testing_defaults

    from vetpacs.platform import wsgi

    body = json.dumps({"queue_depth": 9}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/devices/heartbeat",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {enrolled['secret']}",
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    status = []
    chunks = wsgi.application(environ, lambda s, h, exc=None: status.append((s, dict(h))))
    reply = json.loads(b"".join(chunks))
    assert status[0][0].startswith("200") and reply["commands"] == []
    assert "Set-Cookie" not in status[0][1] and "Vary" not in status[0][1]  # no session, no language
    assert Gateway.objects.get().queue_depth == 9
