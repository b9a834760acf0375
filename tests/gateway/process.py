"""A real `vetpacs-gateway run` process against a live platform, and the files it needs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.interop.conftest import LiveServer, free_port

VENV_BIN = Path(sys.executable).parent
GATEWAY = str(VENV_BIN / "vetpacs-gateway")
START_TIMEOUT_SECONDS = 30


def platform_certificate(server: LiveServer) -> str:
    """The live platform's envelope certificate, as its enrolment hands it out."""
    code = (
        "import django; django.setup();"
        "from vetpacs.apps.identity.envelope import platform_public_key_pem;"
        "print(platform_public_key_pem().decode())"
    )
    env = {**server.env, "DJANGO_SETTINGS_MODULE": "vetpacs.platform.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip() + "\n"


def write_credentials(config_dir: Path, *, platform_url: str, token: str, certificate_pem: str) -> Path:
    """credentials.json as enrolment writes it (0600)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "credentials.json"
    body = json.dumps(
        {
            "platform_url": platform_url,
            "key_id": "test-gateway",
            "secret": token,
            "platform_public_key_pem": certificate_pem,
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    return path


def write_config(config_dir: Path, **settings: Any) -> Path:
    from vetpacs.gateway.config import write_default

    return write_default(config_dir, **settings)


@dataclass
class GatewayProcess:
    """`vetpacs-gateway run` as a clinic runs it, on free ports."""

    config_dir: Path
    dicom_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        log = (self.config_dir / "gateway.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")}
        env.update(
            VETPACS_GATEWAY_DICOM_PORT=str(self.dicom_port),
            VETPACS_GATEWAY_DICOM_HOST="127.0.0.1",
            VETPACS_GATEWAY_STATUS_PORT=str(self.status_port),
            **self.env,
        )
        self.process = subprocess.Popen(
            [GATEWAY, "run", "--config-dir", str(self.config_dir), "--no-heartbeat"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"vetpacs-gateway exited {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.status_port), timeout=1):
                    pass
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(
            f"vetpacs-gateway did not listen within {START_TIMEOUT_SECONDS}s: {self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")}
        return subprocess.run(
            [GATEWAY, *args, "--config-dir", str(self.config_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        """The status page's JSON while the gateway runs (quick to poll), else `status --json`."""
        if self.process is not None and self.process.poll() is None:
            try:
                resp = requests.get(f"http://127.0.0.1:{self.status_port}/status.json", timeout=10)
                resp.raise_for_status()
                return resp.json()
            except requests.RequestException:
                pass
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"gateway did not reach {what} in {timeout}s: {status}\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        path = self.config_dir / "gateway.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def settled(read: Callable[[], Any], quiet: float = 1.0, timeout: float = 30) -> Any:
    """What `read` returns once it has not changed for `quiet` seconds (a stop's last chunks have landed).

    A chunk already on the wire when a stop came still lands, later on a loaded machine than on an
    idle one; waiting for the figure to stand still, rather than a fixed time, is the same on both.
    """
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    raise AssertionError(f"still changing after {timeout}s: {value}")


def make_gateway(
    tmp_path: Path,
    server: LiveServer,
    certificate_pem: str,
    *,
    platform_url: str | None = None,
    **settings: Any,
) -> GatewayProcess:
    config_dir = tmp_path / "gw"
    url = platform_url or server.url
    write_credentials(config_dir, platform_url=url, token=server.token, certificate_pem=certificate_pem)
    settings.setdefault("min_free_bytes", 0)
    settings.setdefault("retry_base_s", 0.5)
    settings.setdefault("retry_cap_s", 2.0)
    write_config(config_dir, **settings)
    return GatewayProcess(config_dir)
