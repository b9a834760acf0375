"""kill -9 the platform mid-STOW: after a restart and a resend, nothing is lost and nothing is doubled."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.builders import dicom as build
from tests.interop.conftest import LiveDatabase, LiveServer, live_platform

INSTANCES = 200
SMALL_REQUESTS = 5  # of 10 instances each, answered before the crash
PER_SMALL_REQUEST = 10
KILL_WHEN_STORED = 70  # the big request (instances 51-200) is under way when the process dies


def multipart(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts
    ]
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(server: LiveServer, parts: list[bytes]) -> requests.Response:
    body, content_type = multipart(parts)
    return requests.post(
        f"{server.dicomweb_url}/studies",
        data=body,
        headers={**server.headers, "Content-Type": content_type},
        timeout=120,
    )


def scalar(database: LiveDatabase, server: LiveServer, sql: str) -> int:
    """Read the live server's own database, as an operator would after the crash."""
    if database.engine == "postgresql":
        import psycopg

        with psycopg.connect(database.url) as conn:
            return conn.execute(sql).fetchone()[0]
    with sqlite3.connect(server.data_dir / "live.sqlite3", timeout=30) as conn:
        return conn.execute(sql).fetchone()[0]


def blob_files(server: LiveServer) -> list[Path]:
    return [
        p for p in (server.data_dir / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
    ]


@pytest.fixture
def crash_server(tmp_path):
    # No background compression: the blobs on disk stay exactly the ones STOW wrote.
    with live_platform(tmp_path / "crash", VETPACS_COMPRESS_ON_INGEST="false") as (server, database):
        yield server, database


@pytest.mark.slow
@pytest.mark.requirement("R-6.2.1a")
@pytest.mark.requirement("R-7.3.4.1b")
def test_kill_9_during_stow_then_resend_stores_every_instance_exactly_once(crash_server):
    server, database = crash_server
    studies = [build.study(20, rows=32, columns=32, bits=8, patient_id=f"PET-{i}") for i in range(10)]
    parts = [build.to_bytes(ds) for study in studies for ds in study]
    assert len(parts) == INSTANCES
    count_sql = "SELECT count(*) FROM archive_instance"

    for i in range(SMALL_REQUESTS):
        resp = stow(server, parts[i * PER_SMALL_REQUEST : (i + 1) * PER_SMALL_REQUEST])
        assert resp.status_code == 200, resp.text
    before_big = SMALL_REQUESTS * PER_SMALL_REQUEST

    outcome: list[object] = []

    def big_request() -> None:
        try:
            outcome.append(stow(server, parts[before_big:]))
        except requests.RequestException as exc:
            outcome.append(exc)

    sender = threading.Thread(target=big_request)
    sender.start()
    deadline = time.monotonic() + 60
    while scalar(database, server, count_sql) < KILL_WHEN_STORED:
        assert time.monotonic() < deadline, "the big STOW request made no progress"
        time.sleep(0.01)
    server.kill()
    sender.join(timeout=60)
    stored_at_crash = scalar(database, server, count_sql)
    assert before_big < stored_at_crash < INSTANCES, "the kill must land in the middle of the upload"
    assert isinstance(outcome[0], requests.RequestException), "the interrupted request cannot have succeeded"

    server.start()
    for i in range(0, INSTANCES, 40):
        resp = stow(server, parts[i : i + 40])
        assert resp.status_code == 200, resp.text
        assert "00081198" not in resp.json(), "a resent instance was refused"

    assert scalar(database, server, count_sql) == INSTANCES
    assert (
        scalar(database, server, "SELECT count(DISTINCT sop_instance_uid) FROM archive_instance") == INSTANCES
    )
    assert scalar(database, server, "SELECT sum(number_of_instances) FROM archive_study") == INSTANCES
    assert scalar(database, server, "SELECT count(*) FROM archive_blob") == INSTANCES

    server.stop()
    sweep = server.run_cli("sweep", "--now")
    assert "orphans removed" in sweep.stdout
    assert scalar(database, server, "SELECT count(*) FROM archive_pendingblob") == 0
    assert len(blob_files(server)) == INSTANCES, (
        "a blob on disk is not indexed (or an indexed one is missing)"
    )
    verify = server.run_cli("verify")
    assert f"{INSTANCES} blobs checked, 0 problems" in verify.stdout
