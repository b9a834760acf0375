"""The auditor's page: search by actor, action, object and time; scoped to the auditor's clinic."""

from __future__ import annotations

import pytest
from django.test import Client

from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.orgs.services import create_user

pytestmark = pytest.mark.django_db
PASSWORD = "Vp!x7Kq#2wLz"  # noqa: S105


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def auditor(clinic):
    return client_for(create_user(username="shenji", password=PASSWORD, organisation=clinic, role="auditor"))


@pytest.mark.requirement("R-7.3.3c")
def test_an_auditor_finds_events_by_action_and_object(clinic, other_clinic, auditor):
    audit.record("study.downloaded", organisation_id=clinic.id, actor="user:zhang", target="study:1.2.3")
    audit.record("study.viewed", organisation_id=clinic.id, actor="user:li", target="study:9.9")
    audit.record("study.downloaded", organisation_id=other_clinic.id, actor="user:x", target="study:1.2.3.4")
    page = auditor.get("/audit/", {"action": "study.downloaded", "target": "1.2.3"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "审计日志" in html
    assert "user:zhang" in html
    assert "user:li" not in html
    assert "user:x" not in html  # another clinic's event


def test_the_export_link_downloads_csv_of_what_was_found(clinic, auditor):
    audit.record("report.signed", organisation_id=clinic.id, actor="user:wang", target="report:7")
    resp = auditor.get("/audit/", {"actor": "wang", "format": "csv"})
    assert resp.status_code == 200
    body = b"".join(resp.streaming_content).decode()
    assert "report.signed" in body and "report:7" in body


def test_a_technician_gets_404(clinic):
    tech = client_for(create_user(username="tech", password=PASSWORD, organisation=clinic, role="technician"))
    assert tech.get("/audit/").status_code == 404


def test_anonymous_is_sent_to_login():
    resp = Client().get("/audit/")
    assert resp.status_code == 302
    assert "/login/" in resp["Location"]


def test_searching_the_log_is_recorded_under_the_auditors_name(clinic, auditor):
    assert auditor.get("/audit/", {"action": "study.viewed"}).status_code == 200
    searched = AuditEvent.objects.get(action="audit.searched")
    assert searched.actor == "user:shenji"
    # ... so the actor filter finds it by the name an auditor knows.
    page = auditor.get("/audit/", {"actor": "user:shenji"}).content.decode()
    assert "audit.searched" in page
