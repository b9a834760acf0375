"""Export audit events as CSV or a JSON array, streamed in id order (`vetpacs audit export`, auditor page)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from vetpacs.apps.audit.models import AuditEvent

COLUMNS = [
    "id",
    "at",
    "action",
    "organisation_id",
    "user_id",
    "actor",
    "target",
    "ip",
    "result",
    "detail",
    "prev_hash",
    "hash",
]
FORMATS = ("csv", "json")


def events(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    organisation_ids: Iterable[int] | None = None,
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.order_by("id")
    if since is not None:
        qs = qs.filter(at__gte=since)
    if until is not None:
        qs = qs.filter(at__lt=until)
    if organisation_ids is not None:
        qs = qs.filter(organisation_id__in=list(organisation_ids))
    return qs


def _row(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "action": event.action,
        "organisation_id": event.organisation_id,
        "user_id": event.user_id,
        "actor": event.actor,
        "target": event.target,
        "ip": event.ip,
        "result": event.result,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def render(qs: QuerySet[AuditEvent], fmt: str) -> Iterator[str]:
    """Text chunks of the export; the hashes travel along so a copy can be checked offline."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use csv or json")
    if fmt == "json":
        yield "["
        for i, event in enumerate(qs.iterator(chunk_size=2000)):
            yield ("," if i else "") + "\n" + json.dumps(_row(event), ensure_ascii=False)
        yield "\n]\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for event in qs.iterator(chunk_size=2000):
        row = _row(event)
        row["detail"] = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
