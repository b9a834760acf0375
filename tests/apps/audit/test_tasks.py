"""The daily audit purge in the task queue (R-7.3.2.2f): booked once, runs the retention purge (the
chain still verifies), purges old security records, books the next run, never forks in two."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.apps.audit.test_chain_and_retention import events_aged, run
from vetpacs.apps.accounts.models import IpBlock, SecurityEvent
from vetpacs.apps.audit import tasks
from vetpacs.apps.audit.models import AuditEvent, AuditPurge

pytestmark = pytest.mark.django_db


def _booked():
    return DBTaskResult.objects.filter(task_path=tasks.purge_expired.module_path, status="READY")


def test_migrate_books_one_purge_for_the_next_quiet_hour():
    # The test database was made by migrate: its post_migrate booked the run.
    call_command("migrate", verbosity=0)  # a second migrate (an upgrade) books no second one
    [row] = _booked()
    when = timezone.localtime(row.run_after)
    assert (when.hour, when.minute) == (tasks.PURGE_HOUR, 0)
    assert dt.timedelta(0) < row.run_after - timezone.now() <= dt.timedelta(days=1)


def test_next_run_is_the_next_purge_hour():
    tz = timezone.get_current_timezone()
    before = dt.datetime(2026, 12, 4, 2, 59, tzinfo=tz)
    after = dt.datetime(2026, 12, 4, 3, 0, tzinfo=tz)
    assert tasks.next_run(before) == dt.datetime(2026, 12, 4, 3, 0, tzinfo=tz)
    assert tasks.next_run(after) == dt.datetime(2026, 12, 5, 3, 0, tzinfo=tz)


@pytest.mark.requirement("R-7.3.2.2f")
@pytest.mark.django_db(transaction=True)  # the worker closes its connection between tasks, as in production
def test_the_worker_runs_the_purge_which_keeps_the_chain_verifiable_and_books_the_next(settings, monkeypatch):
    settings.VETPACS_AUDIT_RETENTION_DAYS = 200
    events, now = events_aged(monkeypatch, [400, 201, 199, 1])
    old_at = timezone.now() - dt.timedelta(days=250)
    SecurityEvent.objects.create(kind=SecurityEvent.Kind.IP_BLOCKED, subject="ip:192.0.2.1", at=old_at)
    young = SecurityEvent.objects.create(
        kind=SecurityEvent.Kind.IP_BLOCKED, subject="ip:192.0.2.2", at=timezone.now()
    )
    IpBlock.objects.create(ip="192.0.2.1", created_at=old_at, until=old_at + dt.timedelta(hours=1))
    # Due now, as if its hour had come; the worker (django-tasks-db's db_worker) runs it.
    tasks.schedule_purge()  # booked by migrate already (and again after a flush of the database)
    _booked().update(run_after=timezone.now() - dt.timedelta(seconds=1))
    call_command("db_worker", "--batch", "--queue-name", "default", "--interval", "0", verbosity=0)
    done = DBTaskResult.objects.get(task_path=tasks.purge_expired.module_path, status="SUCCESSFUL")
    left = set(AuditEvent.objects.values_list("id", flat=True))
    assert events[0].id not in left and events[1].id not in left
    assert {events[2].id, events[3].id} <= left
    assert done.return_value == 2 and AuditPurge.objects.get().removed == 2
    assert "intact" in run("verify")
    assert list(SecurityEvent.objects.all()) == [young] and not IpBlock.objects.exists()
    # The next run is booked for the next quiet hour, once.
    [following] = _booked()
    assert following.run_after > timezone.now()
    assert tasks.schedule_purge() is False and _booked().count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_retention_below_six_months_fails_the_run_purges_nothing_and_books_the_next(settings, monkeypatch):
    settings.VETPACS_AUDIT_RETENTION_DAYS = 90
    events_aged(monkeypatch, [400, 1])
    tasks.schedule_purge()
    _booked().update(run_after=timezone.now() - dt.timedelta(seconds=1))
    call_command("db_worker", "--batch", "--queue-name", "default", "--interval", "0", verbosity=0)
    assert DBTaskResult.objects.filter(task_path=tasks.purge_expired.module_path, status="FAILED").exists()
    assert AuditEvent.objects.count() == 2
    assert _booked().get().run_after > timezone.now()
