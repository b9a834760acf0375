"""The gateways page: an admin sees online/offline and last contact, registers one, queues a command."""

from __future__ import annotations

import pytest
from django.test import Client

from vetpacs.apps.devices import services
from vetpacs.apps.devices.models import Command, Gateway
from vetpacs.apps.orgs.services import create_user


@pytest.fixture
def admin_client(clinic):
    user = create_user(username="boss", password="x-Very-long-9", organisation=clinic, role="org_admin")
    client = Client()
    client.force_login(user)
    return client


def test_page_shows_online_gateway_with_last_contact(admin_client, enrolled):
    services.heartbeat(secret=enrolled["secret"], status={"queue_depth": 4})
    html = admin_client.get("/devices/").content.decode()
    assert Gateway.objects.get().key_id in html and "在线 Online" in html
    assert 'data-testid="online-count">1<' in html


def test_registering_on_the_page_shows_the_code_once(admin_client):
    html = admin_client.post("/devices/", {"name": "超声室"}).content.decode()
    assert "vetpacs-gateway enroll" in html and Gateway.objects.filter(name="超声室").exists()
    assert "vetpacs-gateway enroll --url" not in admin_client.get("/devices/").content.decode()


def test_retry_button_queues_a_command(admin_client, enrolled):
    gateway = Gateway.objects.get()
    resp = admin_client.post(f"/devices/{gateway.id}/command", {"kind": "retry_all"})
    assert resp.status_code == 302
    assert Command.objects.get().kind == "retry_all"


def test_other_clinics_admin_gets_404_on_the_command_route(enrolled, other_clinic):
    user = create_user(username="other", password="x-Very-long-9", organisation=other_clinic)
    client = Client()
    client.force_login(user)
    gateway = Gateway.objects.get()
    assert client.post(f"/devices/{gateway.id}/command", {"kind": "retry_all"}).status_code == 404
    assert gateway.key_id not in client.get("/devices/").content.decode()


def test_new_code_button_shows_a_fresh_code_and_the_old_one_stops_working(admin_client, registered):
    from vetpacs.core.errors import VetpacsError

    gateway, old_code = registered
    html = admin_client.post(f"/devices/{gateway.id}/command", {"kind": "new_code"}).content.decode()
    assert "vetpacs-gateway enroll --url" in html
    with pytest.raises(VetpacsError):
        services.enrol(code=old_code)


def test_revoke_button_revokes(admin_client, enrolled):
    gateway = Gateway.objects.get()
    assert admin_client.post(f"/devices/{gateway.id}/command", {"kind": "revoke"}).status_code == 302
    gateway.refresh_from_db()
    assert gateway.state == "revoked"


@pytest.mark.requirement("R-6.2.3d")
def test_reports_waiting_to_go_back_to_the_clinic_pacs_show_with_the_reason(admin_client, enrolled):
    waiting = {"report_returns_pending": 2, "report_return_error": "CLINICPACS refused the association"}
    services.heartbeat(secret=enrolled["secret"], status={"report_returns": waiting})
    html = admin_client.get("/devices/").content.decode()
    assert "报告待回传 2" in html and "CLINICPACS refused the association" in html
    done = {"report_returns_pending": 0, "report_return_error": ""}
    services.heartbeat(secret=enrolled["secret"], status={"report_returns": done})
    assert "报告待回传" not in admin_client.get("/devices/").content.decode()
