"""Background work of the audit log: the retention purge, run every day by the task queue
(R-7.3.2.2f; django.tasks, handlers idempotent, docs/development/tasks.md)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django_tasks import task

from vetpacs.apps.audit import retention

# Once a day, at this local hour (a quiet time for a clinic).
PURGE_HOUR = 3


def next_run(now: dt.datetime | None = None) -> dt.datetime:
    """The next PURGE_HOUR o'clock, local time, after `now`."""
    local = timezone.localtime(now or timezone.now())
    at = local.replace(hour=PURGE_HOUR, minute=0, second=0, microsecond=0)
    return at if at > local else at + dt.timedelta(days=1)


@task()
def purge_expired() -> int:
    """audit.purge_expired: remove audit events and security records older than the retention (the
    same purge as `vetpacs audit purge`, so the chain stays verifiable), then book the next run."""
    from vetpacs.apps.accounts import services as accounts  # accounts records into the audit log

    now = timezone.now()
    try:
        removed = retention.purge(now=now)
        accounts.purge_security_records(before=now - dt.timedelta(days=retention.retention_days()))
    finally:
        # Booked even when this run failed (it is in the task's row): tomorrow's tries again.
        schedule_purge(at=next_run(now))
    return removed


def _pending() -> bool:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(task_path=purge_expired.module_path, status="READY").exists()


def schedule_purge(*, at: dt.datetime | None = None) -> bool:
    """Book a purge at `at` (default: the next PURGE_HOUR) unless one is already waiting, so the
    daily run never forks in two. Returns whether a run was booked."""
    with transaction.atomic():
        if _pending():
            return False
        purge_expired.using(run_after=at or next_run()).enqueue()
    return True
