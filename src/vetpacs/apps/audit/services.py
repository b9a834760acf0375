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
    with transaction.atomic():
        AuditHead.objects.get_or_create(id=1, defaults={"hash": GENESIS})
        head = AuditHead.objects.select_for_update().get(id=1)
        prev = head.hash
        event = AuditEvent(
            at=timezone.now(),
            action=action,
            organisation_id=organisation_id,
            user_id=user_id,
            actor=actor or ("system" if user_id is None else f"user:{user_id}"),
            target=target,
            ip=ip,
            result=result,
            detail=detail or {},
            prev_hash=prev,
        )
        # Round-trip the detail through JSON so the hash matches what the database returns.
        event.detail = json.loads(json.dumps(event.detail, ensure_ascii=False, default=str))
        event.hash = _digest(prev, _fields(event))
        event.save()
        AuditHead.objects.filter(id=1).update(hash=event.hash)
    return event


def verify_chain() -> AuditEvent | None:
    """The first event whose hash or link is wrong, or None when the chain is whole."""
    prev = GENESIS
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev or event.hash != _digest(prev, _fields(event)):
            return event
        prev = event.hash
    return None
