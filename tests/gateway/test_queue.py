"""The durable queue: states, stop/resume/retry by entry, study or all, back-off, and kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from vetpacs.gateway.queue import (
    DONE,
    FAILED,
    PENDING,
    STATES,
    STOPPED,
    UPLOADING,
    Queue,
    backoff_seconds,
)


@pytest.fixture
def queue(tmp_path):
    q = Queue(tmp_path / "queue.sqlite3")
    yield q
    q.close()


def _add(queue, study="1.2.3", n=1):
    return [
        queue.add(
            sop_instance_uid=f"{study}.{i}.{time.monotonic_ns()}",
            study_instance_uid=study,
            received_path=f"/spool/{i}.dcm",
            received_sha256="0" * 64,
            received_size=100,
            source="test",
        )
        for i in range(n)
    ]


def test_the_queue_runs_in_wal_mode_with_full_sync(queue):
    db = queue._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_claim_takes_the_oldest_pending_entry_once(queue):
    first, second = _add(queue, n=2)
    assert queue.claim().id == first
    assert queue.claim().id == second
    assert queue.claim() is None
    assert queue.get(first).state == UPLOADING


def test_claims_from_many_threads_never_hand_out_an_entry_twice(queue, tmp_path):
    ids = _add(queue, n=60)
    taken: list[int] = []
    lock = threading.Lock()

    def worker():
        q = Queue(tmp_path / "queue.sqlite3")
        while (entry := q.claim()) is not None:
            with lock:
                taken.append(entry.id)
        q.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == ids


@pytest.mark.requirement("R-6.1.4")
def test_failed_entry_is_retried_after_its_back_off(queue):
    [entry_id] = _add(queue)
    queue.claim()
    queue.fail(entry_id, "上传失败 / upload failed: connection refused", retry_in=30)
    assert queue.get(entry_id).state == FAILED
    assert queue.claim() is None
    again = queue.claim(now=time.time() + 31)
    assert again.id == entry_id
    assert again.attempts == 2


def test_back_off_grows_exponentially_and_is_capped():
    delays = [backoff_seconds(n, 2.0, 60.0) for n in range(1, 10)]
    assert 1.8 <= delays[0] <= 2.2
    assert 3.6 <= delays[1] <= 4.4
    assert all(d <= 66 for d in delays)
    assert delays[-1] >= 54


def test_a_refused_entry_waits_for_a_user_retry(queue):
    [entry_id] = _add(queue)
    queue.claim()
    queue.fail(entry_id, "平台拒收 / refused", retry_in=None)
    assert queue.claim(now=time.time() + 10**6) is None
    assert queue.retry(entry_id=entry_id) == 1
    assert queue.claim().id == entry_id


@pytest.mark.requirement("R-6.1.4")
def test_stop_and_resume_by_entry_study_and_all(queue):
    a1, a2 = _add(queue, study="1.1", n=2)
    (b1,) = _add(queue, study="2.2")
    assert queue.stop(entry_id=a1) == 1
    assert queue.get(a1).state == STOPPED
    assert queue.stop(study="1.1") == 1  # a2; a1 is stopped already
    assert queue.claim().id == b1
    assert queue.stop() == 1  # b1, even while uploading
    assert queue.counts()[STOPPED] == 3
    assert queue.claim() is None
    assert queue.resume(study="1.1") == 2
    assert queue.resume() == 1
    assert queue.counts()[PENDING] == 3


def test_a_stop_during_upload_wins_over_the_uploader(queue):
    [entry_id] = _add(queue)
    queue.claim()
    queue.stop(entry_id=entry_id)
    assert not queue.fail(entry_id, "timeout", retry_in=1)
    assert queue.get(entry_id).state == STOPPED


def test_recover_puts_interrupted_uploads_back_with_their_url(queue):
    [entry_id] = _add(queue)
    queue.claim()
    queue.update(entry_id, upload_url="http://platform/api/v1/uploads/abc", bytes_sent=4096)
    assert queue.recover() == 1
    entry = queue.get(entry_id)
    assert entry.state == PENDING
    assert entry.upload_url.endswith("/abc")


def test_studies_summarise_counts_progress_and_the_failure(queue):
    ids = _add(queue, study="9.9", n=4)
    for entry_id in ids[:2]:
        queue.set_state_if(entry_id, (PENDING,), DONE, done_at=time.time())
    queue.fail(ids[2], "上传失败 / upload failed: platform down", retry_in=5)
    [summary] = queue.studies()
    assert summary.total == 4
    assert summary.counts == {DONE: 2, FAILED: 1, PENDING: 1}
    assert summary.progress == 0.5
    assert "platform down" in summary.reason


_CHILD = textwrap.dedent(
    """
    import sys, time
    from vetpacs.gateway.queue import Queue
    q = Queue(sys.argv[1])
    n = 0
    while True:
        entry_id = q.add(sop_instance_uid=f"1.2.{n}", study_instance_uid="1.2", received_path="/x",
                         received_sha256="0" * 64, received_size=1, source="child")
        q.claim()
        q.record_step(entry_id, "validated", "ok")
        q.fail(entry_id, "boom", retry_in=1)
        n += 1
        print(n, flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.requirement("R-6.1.4")
def test_kill_9_at_any_point_leaves_a_consistent_queue(tmp_path):
    path = tmp_path / "queue.sqlite3"
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        # Let it commit a good number of transitions, then kill it mid-way through one.
        for _ in range(20):
            assert child.stdout.readline()
        time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    q = Queue(path)
    q.recover()
    counts = q.counts()
    assert set(counts) == set(STATES)
    assert sum(counts.values()) >= 60
    # Nothing is left claimed by a dead process.
    assert counts[UPLOADING] == 0
    q.close()
