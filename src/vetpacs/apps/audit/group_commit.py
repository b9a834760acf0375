"""Group commit of audit events that stand alone (retrievals, views): one chain append for many requests.

Why: a retrieval changes nothing, yet it must leave a hash-chained audit event (R-7.3.2.2f). Each
append locks the chain head, computes a hash and commits: with one transaction per request that lock
and commit are most of a retrieval's database work. Concurrent requests therefore share it, the way
PostgreSQL's commit_delay and MySQL's binary-log group commit share a flush:

- a request puts its event on this process's queue and waits;
- if no append is under way, that request becomes the leader: it takes every queued event and appends
  them with one `services.record_many` (one lock of the chain head, one INSERT, one commit);
- requests whose events arrived during that append wait for it to end, and one of them leads the next.

Durability is unchanged: `record_durably` returns only after the transaction holding the caller's event
has committed, so no response is sent for a retrieval whose audit row could still be lost. A crash
before the commit loses only events whose requests never got an answer. If the append fails, every
request in the batch gets the error (and answers 500): nothing is acknowledged that was not written.

No timer, no thread of its own and no delay: with one request in flight the leader appends at once, so
a quiet server pays the same as a plain `record`; a busy one pays one transaction per batch. Inside a
transaction of the caller's (a change and its event must land together) it is plain `record`.

The append itself is `services.record_many` in three prepared statements instead of three ORM queries
(read and lock the head, insert the batch, move the head): the events, their hashes and the chain are
exactly the ones record_many makes (`services.new_event`, `services._digest`), which verify() checks.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from vetpacs.apps.audit import services
from vetpacs.apps.audit.models import AuditEvent, AuditHead

__all__ = ["append_rows", "record_durably"]


@dataclass(eq=False)
class _Ticket:
    event: dict[str, Any]
    done: bool = False
    error: BaseException | None = None


_cond = threading.Condition(threading.Lock())
_queue: list[_Ticket] = []
_appending = False


def record_durably(
    action: str,
    *,
    organisation_id: int | None = None,
    user_id: int | None = None,
    actor: str = "",
    target: str = "",
    ip: str | None = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an event and return once it is committed, sharing the commit with concurrent callers."""
    event = services.event_fields(
        action,
        organisation_id=organisation_id,
        user_id=user_id,
        actor=actor,
        target=target,
        ip=ip,
        result=result,
        detail=detail,
    )
    if transaction.get_connection().in_atomic_block:
        services.record_many([event])  # lands with the caller's change, or not at all
        return
    _append([_Ticket(event)])


def _append(tickets: list[_Ticket]) -> None:
    global _appending  # noqa: PLW0603 - the one flag of this process's queue
    mine = tickets[-1]
    with _cond:
        _queue.extend(tickets)
        while True:
            if mine.done:
                if mine.error is not None:
                    # Another request's append failed with this event in it: not written, not acknowledged.
                    raise RuntimeError(f"audit event {mine.event['action']} was not written") from mine.error
                return
            if not _appending:
                _appending = True
                batch = _queue[:]
                _queue.clear()
                break
            _cond.wait()
    error: BaseException | None = None
    try:
        append_rows([t.event for t in batch])
    except BaseException as exc:
        error = exc
        raise
    finally:
        with _cond:
            for t in batch:
                t.done, t.error = True, error
            _appending = False
            _cond.notify_all()


_COLUMNS = ("at", "action", "organisation_id", "user_id", "actor", "target", "ip", "result", "detail")


@functools.cache
def _statements() -> tuple[str, str, str, list[Any]]:
    """(read head, insert event, move head, insert fields): built once, for this database's dialect."""
    quote = connection.ops.quote_name
    head = quote(AuditHead._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    fields = [AuditEvent._meta.get_field(name) for name in (*_COLUMNS, "prev_hash", "hash")]
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return (
        f"SELECT {quote('hash')} FROM {head} WHERE {quote('id')} = 1{lock}",  # noqa: S608 - names only
        f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({marks})",  # noqa: S608
        f"UPDATE {head} SET {quote('hash')} = %s WHERE {quote('id')} = 1",  # noqa: S608
        fields,
    )


def append_rows(events: list[dict[str, Any]]) -> None:
    """services.record_many(events) without the ORM's query building (a retrieval's largest cost).

    Inside a caller's transaction (ingest's index) the events land with its change, or not at all."""
    read_head, insert, move_head, fields = _statements()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(read_head)
        row = cursor.fetchone()
        if row is None:  # made by migration 0002; only a flushed test database lacks it
            services.record_many(events)
            return
        prev = row[0]
        now = timezone.now()
        values = []
        for e in events:
            event = services.new_event(e, at=now, prev_hash=prev)
            event.hash = prev = services._digest(prev, services._fields(event))
            values.append([f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields])
        cursor.executemany(insert, values)
        cursor.execute(move_head, [prev])
