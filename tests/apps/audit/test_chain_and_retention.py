"""`vetpacs audit verify|export|purge`: tampering found by id, exports, retention never cut short."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from vetpacs.apps.audit import chain, retention
from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out)
    return out.getvalue()


def some_events(n: int = 5) -> list[AuditEvent]:
    return [audit.record("study.viewed", organisation_id=1, target=f"study:1.2.{i}") for i in range(n)]


@pytest.mark.requirement("R-7.3.3c")
def test_verify_reports_an_intact_chain_and_records_the_review():
    some_events()
    assert "intact" in run("verify")
    assert AuditEvent.objects.filter(action="audit.verified", result="ok").exists()
    assert "intact" in run("verify")  # the review's own event is part of the chain


@pytest.mark.requirement("R-7.3.3c")
@pytest.mark.requirement("R-7.3.2.2f")
def test_one_row_changed_by_sql_is_found_and_named_by_its_id():
    events = some_events()
    victim = events[2]
    with connection.cursor() as cursor:  # what an intruder with database access would do
        cursor.execute("UPDATE audit_auditevent SET target = %s WHERE id = %s", ["study:forged", victim.id])
    with pytest.raises(CommandError, match=rf"at event {victim.id}\b.*changed"):
        run("verify")


def test_a_row_deleted_by_sql_is_found_at_the_next_event():
    events = some_events()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    report = chain.verify()
    assert report.first_broken_id == events[2].id
    assert "removed" in report.reason


def test_the_newest_rows_deleted_are_found_through_the_chain_head():
    events = some_events()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].id])
    assert not chain.verify().ok


@pytest.mark.requirement("R-7.3.2.2f")
def test_export_json_and_csv_between_dates(tmp_path, monkeypatch):
    (old,), _ = events_aged(monkeypatch, [10])
    new = audit.record("study.downloaded", target="study:new")
    since = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    out = tmp_path / "audit.json"
    run("export", "--format", "json", "--since", since, "-o", str(out))
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == [new.id]
    assert rows[0]["hash"] == new.hash
    out_csv = tmp_path / "audit.csv"
    run("export", "--format", "csv", "-o", str(out_csv))
    table = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8"))))
    assert [r["target"] for r in table][:2] == [old.target, "study:new"]
    assert AuditEvent.objects.filter(action="audit.exported").count() == 2


def events_aged(monkeypatch, ages_days: list[int]) -> tuple[list[AuditEvent], dt.datetime]:
    """Events recorded as if that many days ago, oldest first (the clock moved, not the rows)."""
    now = timezone.now()
    events = []
    for age in ages_days:
        monkeypatch.setattr(audit.timezone, "now", lambda age=age: now - dt.timedelta(days=age))
        events.append(audit.record("study.viewed", target=f"study:{age}"))
    monkeypatch.undo()
    return events, now


@pytest.mark.requirement("R-7.3.2.2f")
@pytest.mark.requirement("R-7.3.4.1d")
def test_purge_removes_only_events_older_than_the_retention_and_the_rest_still_verifies(
    settings, monkeypatch
):
    settings.VETPACS_AUDIT_RETENTION_DAYS = 200
    events, now = events_aged(monkeypatch, [400, 201, 199, 1])
    assert retention.purge(now=now) == 2
    left = set(AuditEvent.objects.values_list("id", flat=True))
    assert {events[2].id, events[3].id} <= left
    assert events[0].id not in left and events[1].id not in left
    assert AuditEvent.objects.filter(action="audit.purged").exists()
    assert "intact" in run("verify")
    assert retention.purge(now=now) == 0  # nothing older is left; the purge event itself is new


@pytest.mark.requirement("R-7.3.4.1d")
def test_a_retention_shorter_than_six_months_is_refused(settings):
    settings.VETPACS_AUDIT_RETENTION_DAYS = 90
    some_events(1)
    with pytest.raises(ImproperlyConfigured, match="184"):
        retention.purge()
    assert AuditEvent.objects.count() == 1


def test_settings_refuse_a_short_retention_at_start_up():
    env = {"VETPACS_AUDIT_RETENTION_DAYS": "30", "DJANGO_SETTINGS_MODULE": "vetpacs.platform.settings"}

    proc = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "AUDIT_RETENTION_DAYS=30" in proc.stderr
