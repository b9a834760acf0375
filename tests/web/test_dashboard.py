"""The home dashboard per role: each role's panel, counted over the caller's own clinic or chain only."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from tests.builders.dicom import image
from vetpacs.web.dashboard import ADMIN, DESK, READING, SECURITY, panels_for


def today() -> str:
    return timezone.localdate().strftime("%Y%m%d")


def tile(text: str, name: str) -> str:
    found = re.search(rf'id="tile-{name}"[^>]*><div class="n">([^<]*)<', text)
    assert found, f"no tile {name}"
    return found.group(1)


def chart(text: str, key: str) -> dict:
    found = re.search(rf'<script id="chart-{key}" type="application/json">(.*?)</script>', text)
    assert found, f"no chart {key}"
    return json.loads(found.group(1))


# --- which panels a caller sees (pure rules, no database) --------------------------------------------


def test_each_built_in_role_opens_on_its_own_panel():
    for role, panel in (
        ("radiologist", READING), ("senior_radiologist", READING), ("technician", DESK),
        ("front_desk", DESK), ("org_admin", ADMIN), ("auditor", SECURITY),
    ):  # fmt: skip
        assert list(panels_for({7: {role}}, {})) == [panel], role


def test_roles_in_two_clinics_give_each_panel_its_own_clinics_in_a_fixed_order():
    found = panels_for({1: {"auditor"}, 2: {"radiologist"}, 3: {"radiologist", "technician"}}, {})
    assert list(found) == [READING, DESK, SECURITY]
    assert found[READING] == {2, 3} and found[DESK] == {3} and found[SECURITY] == {1}


def test_a_custom_role_gets_the_panel_its_permissions_read_as():
    perms = {1: frozenset({"study.view", "report.write"}), 2: frozenset({"audit.view"})}
    found = panels_for({1: {"custom:4"}, 2: {"custom:5"}}, perms)
    assert found == {READING: {1}, SECURITY: {2}}


# --- each role's page ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.requirement("R-6.2.2c")
def test_radiologist_sees_unreported_exams_of_the_clinic_drafts_placeholder_and_todays_workload(
    signed_in, clinic, other_clinic, ingest
):
    ingest(image(patient_id="P-1", animal="Doudou", StudyDate=today(), StudyTime="093000", modality="DX"))
    ingest(image(patient_id="P-2", animal="Mimi", StudyDate="20200101", modality="CT"))
    ingest(
        image(patient_id="P-3", animal="Stranger", StudyDate=today(), modality="CT"),
        organisation=other_clinic,
    )
    text = signed_in(clinic, "rad-wang", "radiologist").get("/dashboard/").content.decode()
    assert 'id="panel-reading"' in text
    assert 'id="panel-admin"' not in text and 'id="panel-security"' not in text
    assert tile(text, "unreported") == "2" and tile(text, "today") == "1"
    # Drafts cannot be counted before reports exist: zero, and the tile says why.
    assert tile(text, "drafts") == "0" and "报告模块上线后统计" in text
    listed = re.search(r'id="unreported-list">(.*?)</table>', text, re.S).group(1)
    assert "Doudou" in listed and "Mimi" in listed and "Stranger" not in listed
    workload = chart(text, "reading-chart")
    assert len(workload["xAxis"]["data"]) == 24
    assert [(s["name"], s["data"][9]) for s in workload["series"]] == [("DX", 1)]


@pytest.mark.django_db
@pytest.mark.requirement("R-6.2.2c")
def test_technician_sees_todays_exams_by_modality_gateways_offline_and_refused_uploads(
    signed_in, clinic, other_clinic, ingest
):
    from vetpacs.apps.devices.models import Gateway
    from vetpacs.apps.uploads.models import Upload

    ingest(image(patient_id="P-1", StudyDate=today(), modality="DX"))
    ingest(image(patient_id="P-2", StudyDate=today(), modality="DX"))
    ingest(image(patient_id="P-3", StudyDate=today(), modality="US"))
    ingest(image(patient_id="P-4", StudyDate=today(), modality="CT"), organisation=other_clinic)
    now = timezone.now()
    for org, name, state, seen in (
        (clinic, "DR 室", "offline", now - dt.timedelta(hours=3)),
        (clinic, "B 超", "online", now),
        (other_clinic, "别家", "offline", None),
    ):
        Gateway.objects.create(
            organisation=org, name=name, key_id=f"gw_{name}", state=state, last_seen_at=seen
        )
    for org, name, when in (
        (clinic, "bad.dcm", now),
        (clinic, "old.dcm", now - dt.timedelta(days=3)),
        (other_clinic, "theirs.dcm", now),
    ):
        Upload.objects.create(
            organisation=org, length=10, state="refused", metadata={"filename": name},
            reason="not a DICOM file", completed_at=when,
        )  # fmt: skip
    text = signed_in(clinic, "tech-liu", "technician").get("/dashboard/").content.decode()
    assert 'id="panel-desk"' in text and 'id="panel-reading"' not in text and 'id="panel-admin"' not in text
    assert tile(text, "desk-today") == "3"
    by_modality = re.search(r'id="today-by-modality">(.*?)</table>', text, re.S).group(1)
    assert re.findall(r"<td>(\w+)</td><td>(\d+)</td>", by_modality) == [("DX", "2"), ("US", "1")]
    assert chart(text, "desk-chart")["yAxis"]["data"] == ["DX", "US"]
    assert tile(text, "desk-gateways") == "1"
    assert "DR 室" in text and "别家" not in text
    assert tile(text, "upload-failures") == "1"
    assert "bad.dcm" in text and "old.dcm" not in text and "theirs.dcm" not in text


@pytest.mark.django_db
@pytest.mark.requirement("R-6.2.2c")
def test_organisation_admin_sees_storage_by_clinic_and_modality_gateways_and_users(
    signed_in, clinic, other_clinic, ingest
):
    ingest(image(patient_id="P-1", modality="DX"))
    ingest(image(patient_id="P-2", modality="CT"))
    ingest(image(patient_id="P-3", modality="MR"), organisation=other_clinic)
    signed_in(clinic, "rad-wang", "radiologist")
    signed_in(other_clinic, "other-zhao", "org_admin")
    text = signed_in(clinic, "admin-li", "org_admin").get("/dashboard/").content.decode()
    assert 'id="panel-admin"' in text and 'id="panel-reading"' not in text
    table = re.search(r'id="storage-by-clinic">(.*?)</table>', text, re.S).group(1)
    assert "<th>CT</th><th>DX</th>" in table and "MR" not in table and "Other Clinic" not in table
    storage = chart(text, "admin-storage_chart")
    assert storage["yAxis"]["data"] == [clinic.name]
    assert sorted(s["name"] for s in storage["series"]) == ["CT", "DX"]
    assert tile(text, "users") == "2"
    assert tile(text, "gateways") == "0"
    assert tile(text, "storage") != "0\xa0bytes"


@pytest.mark.django_db
def test_chain_admin_sees_storage_of_every_member_clinic(signed_in, ingest):
    from vetpacs.apps.orgs.services import create_organisation

    chain = create_organisation(name="Chain 连锁", kind="chain")
    east = create_organisation(name="East 东店", parent=chain)
    west = create_organisation(name="West 西店", parent=chain)
    ingest(image(patient_id="P-1", modality="DX"), organisation=east)
    ingest(image(patient_id="P-2", modality="US"), organisation=west)
    text = signed_in(chain, "chain-admin", "org_admin").get("/dashboard/").content.decode()
    assert chart(text, "admin-storage_chart")["yAxis"]["data"] == ["East 东店", "West 西店"]


@pytest.mark.django_db
def test_auditor_sees_recent_security_events_of_the_own_organisation_only(signed_in, clinic, other_clinic):
    from vetpacs.apps.audit import services as audit

    audit.record("login.failed", organisation_id=clinic.id, actor="login:guess-1", result="failed")
    audit.record("account.locked", organisation_id=clinic.id, target="user:9")
    audit.record("study.viewed", organisation_id=clinic.id, actor="user:someone")
    audit.record("login.failed", organisation_id=other_clinic.id, actor="login:elsewhere", result="failed")
    text = signed_in(clinic, "audit-sun", "auditor").get("/dashboard/").content.decode()
    assert 'id="panel-security"' in text
    assert (
        'id="panel-reading"' not in text and 'id="panel-desk"' not in text and 'id="panel-admin"' not in text
    )
    assert tile(text, "failed-logins") == "1" and tile(text, "locked") == "1"
    events = re.search(r'id="security-events">(.*?)</table>', text, re.S).group(1)
    assert "login:guess-1" in events and "account.locked" in events
    assert "elsewhere" not in events and "study.viewed" not in events


@pytest.mark.django_db
def test_a_study_with_a_stored_pdf_report_is_not_counted_as_unreported(signed_in, clinic, ingest, tmp_path):
    from tests.web.test_worklist import pdf_report

    reported = ingest(image(patient_id="CAT-2", animal="咪咪", StudyDate=today(), modality="DX"))
    ingest(image(patient_id="P-9", animal="Doudou", StudyDate=today(), modality="DX"))
    ingest(pdf_report(tmp_path, reported.study_instance_uid))
    text = signed_in(clinic, "rad-wang", "radiologist").get("/dashboard/").content.decode()
    # The same count the tile's link shows on the worklist (?report=unreported).
    assert tile(text, "unreported") == "1"
    listed = re.search(r'id="unreported-list">(.*?)</table>', text, re.S).group(1)
    assert "Doudou" in listed and "咪咪" not in listed


@pytest.mark.django_db
def test_an_auditor_lands_on_the_dashboard_and_sees_no_worklist_link(signed_in, clinic):
    auditor = signed_in(clinic, "audit-sun", "auditor")
    response = auditor.get("/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    text = auditor.get("/dashboard/").content.decode()
    assert 'href="/dashboard/"' in text and 'href="/" class' not in text
    # A radiologist keeps the worklist link.
    assert (
        'href="/" class' in signed_in(clinic, "rad-wang", "radiologist").get("/dashboard/").content.decode()
    )
