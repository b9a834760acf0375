"""Proving the audit chain unbroken (`vetpacs audit verify`), from the genesis or the last purge."""

from __future__ import annotations

from dataclasses import dataclass

from vetpacs.apps.audit.models import AuditEvent, AuditHead, AuditPurge
from vetpacs.apps.audit.services import GENESIS, _digest, _fields


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def anchor() -> tuple[int, str]:
    """(last removed id, its hash) of the newest purge, or (0, GENESIS) when nothing was purged."""
    purge = AuditPurge.objects.order_by("-id").first()
    return (purge.up_to_id, purge.anchor_hash) if purge else (0, GENESIS)


def verify() -> ChainReport:
    """Walk every event in id order; name the first whose link or hash is wrong, or a cut-off tail."""
    after_id, prev = anchor()
    checked = 0
    for event in AuditEvent.objects.filter(id__gt=after_id).order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev:
            return ChainReport(
                checked, event.id, "its prev_hash is not the previous event's hash (a row removed)"
            )
        if event.hash != _digest(prev, _fields(event)):
            return ChainReport(checked, event.id, "its content does not match its hash (the row was changed)")
        prev = event.hash
        checked += 1
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and head.hash != prev:
        # The newest events were deleted: the chain head still remembers the hash they ended with.
        return ChainReport(
            checked, -1, "the chain head's hash is not the last event's (events removed at the end)"
        )
    return ChainReport(checked)
