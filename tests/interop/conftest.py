"""A real platform process (`vetpacs serve`) on a free port, with its own data dir and database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

VENV_BIN = Path(sys.executable).parent
VETPACS = str(VENV_BIN / "vetpacs")
ORG_NAME = "Live Clinic 活体诊所"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    """A running `vetpacs serve`: its URL, a clinic token, and the CLI on the same data."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    token: str = ""
    organisation: str = ORG_NAME
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicomweb"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def run_cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `vetpacs ARGS` against the server's data dir and database."""
        done = subprocess.run(
            [VETPACS, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"vetpacs {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def start(self) -> None:
        log = (self.data_dir / "serve.log").open("ab")
        # A session of its own: stop() and kill() reach granian's workers through the process group.
        self.process = subprocess.Popen(
            [VETPACS, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"vetpacs serve exited {self.process.returncode}: {self.log_tail()}")
            try:
                resp = requests.get(f"{self.dicomweb_url}/studies", headers=self.headers, timeout=5)
            except (requests.ConnectionError, requests.Timeout):  # a busy machine starts slowly
                time.sleep(0.2)
                continue
            if resp.status_code == 401:
                raise AssertionError("the live server refused the token it issued")
            # 200 once search_for_studies answers; any application answer below 502 means it serves.
            if resp.status_code < 502:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"vetpacs serve did not answer within {START_TIMEOUT_SECONDS}s: {self.log_tail()}"
        )

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the server's process group)."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._reap_group()
        self.process = None

    def kill(self) -> None:
        """kill -9 the server and its workers: a crash, no clean-up of any kind."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=20)
        self._reap_group()
        self.process = None

    def _reap_group(self) -> None:
        # granian's workers may outlive the parent by a moment; they share its process group.
        assert self.process is not None
        pgid = self.process.pid
        for _ in range(50):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 4000) -> str:
        path = self.data_dir / "serve.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


class LiveDatabase:
    """SQLite under the data dir, or a fresh PostgreSQL database when the run uses PostgreSQL."""

    def __init__(self, data_dir: Path) -> None:
        self.engine = os.environ.get("VETPACS_TEST_DATABASE", "sqlite")
        self.name = ""
        if self.engine == "postgresql":
            base = os.environ.get("VETPACS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/vetpacs")
            parts = urlsplit(base)
            self.admin_url = urlunsplit(parts._replace(path="/postgres"))
            self.name = f"vetpacs_live_{uuid.uuid4().hex[:12]}"
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
            self._execute(f'CREATE DATABASE "{self.name}"')
        else:
            self.url = f"sqlite:///{data_dir / 'live.sqlite3'}"

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.name:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def start_live_server(data_dir: Path, **extra_env: str) -> tuple[LiveServer, LiveDatabase]:
    """Migrate, create a clinic and a token, start `vetpacs serve`: the way an operator would."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database = LiveDatabase(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")}
    env.update(
        VETPACS_DATA_DIR=str(data_dir),
        VETPACS_DATABASE_URL=database.url,
        VETPACS_LOG_LEVEL="WARNING",
        **extra_env,
    )
    server = LiveServer(data_dir=data_dir, env=env)
    try:
        server.run_cli("migrate", "--noinput")
        server.run_cli("create-org", ORG_NAME)
        out = server.run_cli("create-token", "--org", ORG_NAME, "--name", "interop").stdout
        server.token = next(line.strip() for line in out.splitlines() if line.strip().startswith("vp_"))
        server.start()
    except BaseException:
        server.stop()
        database.drop()
        raise
    return server, database


@contextlib.contextmanager
def live_platform(data_dir: Path, **extra_env: str) -> Iterator[tuple[LiveServer, LiveDatabase]]:
    """start_live_server, for a `with` block: the server stopped and its database dropped on leaving."""
    server, database = start_live_server(data_dir, **extra_env)
    try:
        yield server, database
    finally:
        server.stop()
        database.drop()


@pytest.fixture(scope="session")
def platform_server(tmp_path_factory) -> Iterator[LiveServer]:
    """One real platform process for the whole session; tests share its clinic and token.

    Not named `live_server`: pytest-django owns that name (its in-process server).
    """
    with live_platform(tmp_path_factory.mktemp("live")) as (server, database):
        yield server


@pytest.fixture(scope="session")
def live_server_url(platform_server) -> str:
    return platform_server.url
