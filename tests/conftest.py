"""Test set-up: a fresh data directory per run, SQLite or PostgreSQL chosen by VETPACS_TEST_DATABASE.

Both are decided in tests/settings.py, which pytest-django imports before this file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.settings import TEST_DATA_DIR as _DATA
from tests.settings import TEST_DATABASE as _DB


def _serve_one_request_at_a_time() -> None:
    """pytest-django's in-process live server hands this process's in-memory SQLite connection to its
    request threads, and two requests at once on one connection fail ("cannot open savepoint - SQL
    statements in progress"). On SQLite it serves one request at a time instead (closing each HTTP
    connection, as Django's server does when it is not threaded). Tests that need requests served at
    once start `vetpacs serve` (tests/interop/conftest.py: live_platform)."""
    from django.core.servers.basehttp import WSGIServer
    from django.test.testcases import LiveServerThread

    class OneRequestAtATime(WSGIServer):
        def __init__(self, *args: Any, connections_override: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)  # the server thread itself holds the shared connection

    LiveServerThread.server_class = OneRequestAtATime


if _DB != "postgresql":
    _serve_one_request_at_a_time()


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if _DB == "postgresql" and not _postgres_up():
        msg = "PostgreSQL is not reachable on 127.0.0.1:5432"
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(msg + " (CI=true: the PostgreSQL run must not be skipped)")
        pytest.exit(msg + "; start it or run `make test-sqlite`", returncode=0)
    wanted = "postgresql" if _DB == "postgresql" else "sqlite"
    if connection.vendor != wanted:
        raise pytest.UsageError(f"VETPACS_TEST_DATABASE={_DB} but the settings chose {connection.vendor}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"vetpacs: database={connection.vendor} ({connection.settings_dict['NAME']}), data dir={_DATA}"


@pytest.fixture
def data_dir() -> Path:
    return _DATA


@pytest.fixture(autouse=True)
def _fresh_blob_store(settings, tmp_path):
    """Each test gets its own blob directory, so tests never see each other's bytes."""
    from vetpacs.apps.archive import blobs

    settings.VETPACS_STORAGE = {**settings.VETPACS_STORAGE, "local_root": str(tmp_path / "blobs")}
    settings.VETPACS_INCOMING_DIR = tmp_path / "incoming"
    blobs.reset()
    yield
    blobs.reset()


@pytest.fixture(autouse=True)
def _empty_search_cache():
    """Tests roll their databases back, so generations repeat: no cached answer crosses tests.

    Nor does the process's list of blocked addresses: each test's first request reads it afresh.
    """
    from vetpacs.apps.accounts.services import forget_ip_blocks
    from vetpacs.apps.archive import kept
    from vetpacs.dicomweb import search_cache, wado

    def forget() -> None:
        search_cache.clear()
        wado.clear_prepared()
        kept.clear_all()
        forget_ip_blocks()

    forget()
    yield
    forget()


@pytest.fixture
def clinic(db):
    from vetpacs.apps.orgs.services import create_organisation

    return create_organisation(name="安心宠物医院 Anxin Pet Clinic")


@pytest.fixture
def other_clinic(db):
    from vetpacs.apps.orgs.services import create_organisation

    return create_organisation(name="Other Clinic")


@pytest.fixture
def token(clinic) -> str:
    from vetpacs.apps.orgs.services import issue_token

    return issue_token(organisation=clinic, name="test")


@pytest.fixture
def other_token(other_clinic) -> str:
    from vetpacs.apps.orgs.services import issue_token

    return issue_token(organisation=other_clinic, name="test")


@pytest.fixture
def clinic_client(client, token):
    """A Django test client calling as the clinic (bearer token)."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def other_clinic_client(db, other_token):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {other_token}")


@pytest.fixture
def ingest(clinic, tmp_path):
    """Archive datasets for the clinic: ingest(ds, ...) -> IngestResult."""
    from tests.builders.dicom import write
    from vetpacs.apps.archive.services import ingest_file

    def _ingest(*datasets, organisation=None):
        results = []
        for ds in datasets:
            path = write(ds, tmp_path)
            results.append(ingest_file(path, organisation_id=(organisation or clinic).id, actor="test"))
        return results[0] if len(results) == 1 else results

    return _ingest


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, started once per run: Playwright's sync API allows one driver per process."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django then refuses ORM calls from
    # tests run while it lives (its async-safety check). Playwright's own advice for Django tests.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
