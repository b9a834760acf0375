"""Retention of the audit log (R-7.3.2.2f: at least 6 months) and the purge of older events."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from vetpacs.apps.audit import services
from vetpacs.apps.audit.models import AuditEvent, AuditPurge

# Six calendar months are at most 184 days (July to December); less is refused, never rounded up.
MIN_RETENTION_DAYS = 184


def retention_days() -> int:
    days = int(settings.VETPACS_AUDIT_RETENTION_DAYS)
    if days < MIN_RETENTION_DAYS:
        raise ImproperlyConfigured(
            f"VETPACS_AUDIT_RETENTION_DAYS={days} is below the minimum of {MIN_RETENTION_DAYS} days "
            "(audit logs are kept at least 6 months, R-7.3.2.2f) / 审计日志至少保存6个月"
        )
    return days


def purge(*, now: dt.datetime | None = None) -> int:
    """Remove events older than the retention, oldest first; never one younger. Returns how many."""
    days = retention_days()
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=days)
    with transaction.atomic():
        # Only a prefix of the chain goes, so what stays still verifies from one anchor.
        first_young = (
            AuditEvent.objects.filter(at__gte=cutoff).order_by("id").values_list("id", flat=True).first()
        )
        old = AuditEvent.objects.filter(at__lt=cutoff)
        if first_young is not None:
            old = old.filter(id__lt=first_young)
        last = old.order_by("-id").first()
        if last is None:
            return 0
        removed, _ = AuditEvent.objects.filter(id__lte=last.id).delete()
        AuditPurge.objects.create(
            at=now, up_to_id=last.id, anchor_hash=last.hash, removed=removed, retention_days=days
        )
        services.record(
            "audit.purged",
            actor="system",
            target=f"audit:<={last.id}",
            detail={"removed": removed, "retention_days": days, "cutoff": cutoff.isoformat()},
        )
    return removed
