"""kill -9 the platform while retrievals' audit events are group-committed: no acknowledged one is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import requests

from tests.builders import dicom as build
from tests.interop.conftest import live_platform
from tests.scenarios.test_crash import stow

CLIENTS = 8
KILL_AFTER_ANSWERS = 300
RETRIEVED_SQL = "SELECT detail FROM audit_auditevent WHERE action = 'study.retrieved'"


@pytest.fixture
def audit_server(tmp_path):
    with live_platform(tmp_path / "audit-crash", VETPACS_COMPRESS_ON_INGEST="false") as (server, database):
        yield server, database


def retrieved_events(database, server) -> Counter[str]:
    """How many study.retrieved events each instance has, read from the database after the crash."""
    rows = scalar_rows(database, server, RETRIEVED_SQL)
    counts: Counter[str] = Counter()
    for (detail,) in rows:
        counts[(detail if isinstance(detail, dict) else json.loads(detail))["instance"]] += 1
    return counts


def scalar_rows(database, server, sql: str) -> list[tuple]:
    if database.engine == "postgresql":
        import psycopg

        with psycopg.connect(database.url) as conn:
            return conn.execute(sql).fetchall()
    import sqlite3

    with sqlite3.connect(server.data_dir / "live.sqlite3", timeout=30) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
@pytest.mark.requirement("R-7.3.2.2f")
def test_kill_9_during_concurrent_retrievals_loses_no_acknowledged_audit_event(audit_server):
    server, database = audit_server
    study = build.study(10, rows=32, columns=32, bits=8, owner="Zhang", patient_id="PET-AUDIT")
    assert stow(server, [build.to_bytes(ds) for ds in study]).status_code == 200
    urls = {
        str(ds.SOPInstanceUID): (
            f"{server.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )
        for ds in study
    }
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    answered: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        session = requests.Session()
        order = list(urls.items())[n:] + list(urls.items())[:n]
        while not stop.is_set():
            for sop, url in order:
                try:
                    resp = session.get(url, headers={**server.headers, "Accept": accept}, timeout=30)
                except requests.RequestException:
                    return  # the server is gone: this request was not answered
                assert resp.status_code == 200, resp.text[:300]
                assert b"Zhang" in resp.content, "the owning clinic gets the owner back"
                with lock:
                    answered[sop] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while sum(answered.values()) < KILL_AFTER_ANSWERS:
        assert time.monotonic() < deadline, "retrievals made no progress"
        assert all(t.is_alive() for t in threads), "a client failed before the crash"
        time.sleep(0.005)
    server.kill()  # in the middle of retrievals: some events queued, some being committed
    stop.set()
    for t in threads:
        t.join(timeout=60)

    events = retrieved_events(database, server)
    for sop, count in answered.items():
        assert events[sop] >= count, f"{sop}: {count} retrievals answered, {events[sop]} audited"
    assert sum(events.values()) >= sum(answered.values()) >= KILL_AFTER_ANSWERS
    # The chain survives the crash whole, and the platform carries on from it.
    assert "intact" in server.run_cli("audit", "verify").stdout
    server.start()
    sop, url = next(iter(urls.items()))
    assert requests.get(url, headers={**server.headers, "Accept": accept}, timeout=30).status_code == 200
    assert retrieved_events(database, server)[sop] == events[sop] + 1
