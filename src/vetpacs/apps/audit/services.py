"""Record audit events and verify the hash chain."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from vetpacs.apps.audit.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _digest(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "action": event.action,
        "organisation_id": event.organisation_id,
        "user_id": event.user_id,
        "actor": event.actor,
        "target": event.target,
        "ip": event.ip,
        "result": event.result,
        "detail": event.detail,
    }


def record(
    action: str,
    *,
    organisation_id: int | None = None,
    user_id: int | None = None,
    actor: str = "",
    target: str = "",
    ip: str | None = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event. Runs inside the caller's transaction, so it lands with the change."""
    fields = event_fields(
        action,
        organisation_id=organisation_id,
        user_id=user_id,
        actor=actor,
        target=target,
        ip=ip,
        result=result,
        detail=detail,
    )
    return record_many([fields])[0]


def event_fields(
    action: str,
    *,
    organisation_id: int | None = None,
    user_id: int | None = None,
    actor: str = "",
    target: str = "",
    ip: str | None = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One event as record_many() takes it (record()'s arguments, with their defaults). An event
    given a user and no actor names the user as every other event does (`user:<username>`, what an
    auditor types in the actor filter), read now, before the chain is locked."""
    if not actor and user_id is not None:
        actor = _user_label(user_id)
    return {
        "action": action,
        "organisation_id": organisation_id,
        "user_id": user_id,
        "actor": actor,
        "target": target,
        "ip": ip,
        "result": result,
        "detail": detail,
    }


def _user_label(user_id: int) -> str:
    from django.contrib.auth import get_user_model

    username = get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first()
    return f"user:{username}" if username is not None else f"user:{user_id}"


def record_many(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events (each a dict of record()'s arguments) under one lock of the chain head."""
    if not events:
        return []
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(id=1).first()
        if head is None:  # made by migration 0002; only a flushed test database lacks it
            head = AuditHead.objects.create(id=1, hash=GENESIS)
        prev = head.hash
        rows = []
        now = timezone.now()
        for e in events:
            event = new_event(e, at=now, prev_hash=prev)
            event.hash = _digest(prev, _fields(event))
            prev = event.hash
            rows.append(event)
        AuditEvent.objects.bulk_create(rows)
        AuditHead.objects.filter(id=1).update(hash=prev)
    return rows


def new_event(e: dict[str, Any], *, at: Any, prev_hash: str) -> AuditEvent:
    """The unsaved row for one of record_many's events (a dict of record()'s arguments), not yet hashed."""
    user_id = e.get("user_id")
    return AuditEvent(
        at=at,
        action=e["action"],
        organisation_id=e.get("organisation_id"),
        user_id=user_id,
        actor=e.get("actor") or ("system" if user_id is None else f"user:{user_id}"),
        target=e.get("target", ""),
        ip=e.get("ip"),
        result=e.get("result", "ok"),
        detail=json.loads(json.dumps(e.get("detail") or {}, ensure_ascii=False, default=str)),
        prev_hash=prev_hash,
    )


def verify_chain() -> AuditEvent | None:
    """The first event whose hash or link is wrong, or None when the chain is whole."""
    prev = GENESIS
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev or event.hash != _digest(prev, _fields(event)):
            return event
        prev = event.hash
    return None
