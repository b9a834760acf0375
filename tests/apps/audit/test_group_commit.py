"""Group commit of retrieval events: acknowledged only once written, one chain, shared transactions."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from vetpacs.apps.audit import group_commit
from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent, AuditHead

# Real commits from several threads, each with its own connection: no test transaction around them.
pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def retrieved(i: int, **extra) -> dict:
    return {
        "organisation_id": 1,
        "user_id": None,
        "actor": "token:vp_test",
        "target": f"study:1.2.{i}",
        "ip": "127.0.0.1",
        "detail": {"level": "instance", "instance": f"1.2.{i}.1"},
        **extra,
    }


def in_threads(work, n: int = THREADS) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


@pytest.mark.requirement("R-7.3.2.2f")
def test_events_from_concurrent_requests_and_plain_records_form_one_verifiable_chain():
    audit.record("study.viewed", organisation_id=1, target="study:9.0")

    def work(i: int) -> None:
        for j in range(20):
            group_commit.record_durably("study.retrieved", **retrieved(i * 100 + j))

    assert in_threads(work) == []
    audit.record("study.viewed", organisation_id=1, target="study:9.1")
    assert AuditEvent.objects.filter(action="study.retrieved").count() == THREADS * 20
    assert audit.verify_chain() is None
    last = AuditEvent.objects.order_by("-id").first()
    assert last.target == "study:9.1" and AuditHead.objects.get(id=1).hash == last.hash
    one = AuditEvent.objects.get(target="study:1.2.305")
    assert (one.actor, one.ip, one.detail) == ("token:vp_test", "127.0.0.1", retrieved(305)["detail"])


def test_requests_arriving_during_an_append_wait_for_it_and_share_the_next_transaction():
    # An append is under way (its leader is writing): requests arriving now queue and wait.
    with group_commit._cond:
        group_commit._appending = True
    errors: list[BaseException] = []
    waiting = threading.Thread(
        target=lambda: errors.extend(
            in_threads(lambda i: group_commit.record_durably("study.retrieved", **retrieved(i)), 7)
        )
    )
    waiting.start()
    deadline = time.monotonic() + 30
    while len(group_commit._queue) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group_commit._queue) == 7
    time.sleep(0.1)
    assert waiting.is_alive(), "no request is answered before its event is written"
    assert not AuditEvent.objects.exists()
    # The append under way ends: one of the waiting requests writes all seven events at once.
    with group_commit._cond:
        group_commit._appending = False
        group_commit._cond.notify_all()
    waiting.join(60)
    assert errors == []
    events = list(AuditEvent.objects.order_by("id"))
    assert len(events) == 7
    assert len({e.at for e in events}) == 1, "one transaction (a batch shares its time)"
    assert audit.verify_chain() is None


def test_a_batch_that_cannot_be_written_acknowledges_none_of_its_events():
    good = group_commit._Ticket({"action": "study.retrieved", **retrieved(1)})
    # An organisation id no database integer column holds: the INSERT fails for the whole batch.
    bad = group_commit._Ticket({"action": "study.retrieved", **retrieved(2, organisation_id=2**70)})
    with pytest.raises(Exception):  # noqa: B017, PT011 - the database driver's own error type
        group_commit._append([good, bad])
    assert not AuditEvent.objects.exists()
    assert good.done and good.error is not None, "the good event's request fails too: not written"
    # The queue is not left blocked: the next retrieval is written and acknowledged.
    group_commit.record_durably("study.retrieved", **retrieved(3))
    assert AuditEvent.objects.filter(target="study:1.2.3").count() == 1
    assert audit.verify_chain() is None


def test_inside_a_transaction_the_event_lands_with_the_change_or_not_at_all():
    with pytest.raises(RuntimeError), transaction.atomic():
        group_commit.record_durably("study.retrieved", **retrieved(1))
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()
    with transaction.atomic():
        group_commit.record_durably("study.retrieved", **retrieved(2))
    assert AuditEvent.objects.count() == 1
