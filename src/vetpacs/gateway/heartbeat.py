"""The gateway's heartbeat: its state to the platform every 15 s, and the commands the platform queued.

POST /api/v1/devices/heartbeat with `Authorization: Bearer <secret>` and a JSON body
    {"version", "queue_depth", "failures", "disk_free_bytes", ... what status_fn adds,
     "acks": [{"id": 7, "ok": true, "detail": "..."}]}
answers {"interval_s": 15, "commands": [{"id": 7, "kind": "retry_all", "args": {...}}]}.
Each command arrives once; the gateway passes it to `on_command` and acknowledges it (ok or the
error) in the next beat, which follows at once so an admin sees the result within seconds.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from vetpacs import __version__
from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.policing import retry_after_s

log = logging.getLogger(__name__)

HEARTBEAT_PATH = "/api/v1/devices/heartbeat"
DEFAULT_INTERVAL_S = 15.0
# A platform that does not answer within this time counts as a missed beat; the next one follows.
REQUEST_TIMEOUT_S = 10.0
# The platform may ask for a different interval, within these bounds.
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 300.0

Command = dict[str, Any]


class HeartbeatClient:
    """Posts the gateway's status every `interval_s` seconds in a thread; see the module docstring."""

    def __init__(
        self,
        credentials: Credentials,
        status_fn: Callable[[], Mapping[str, Any]],
        on_command: Callable[[Command], str | None],
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        disk_path: Path | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.credentials = credentials
        self.status_fn = status_fn
        self.on_command = on_command
        self.interval_s = interval_s
        self.disk_path = Path(disk_path) if disk_path else Path.cwd()
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._acks: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_ok: bool = False

    # -- one beat ----------------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        status = dict(self.status_fn())
        body: dict[str, Any] = {
            "version": __version__,
            "queue_depth": 0,
            "failures": 0,
        }
        try:
            body["disk_free_bytes"] = shutil.disk_usage(self.disk_path).free
        except OSError:
            body["disk_free_bytes"] = None
        body.update(status)
        with self._lock:
            body["acks"] = list(self._acks)
        return body

    def beat_once(self) -> list[Command]:
        """Send one heartbeat, run the commands in its reply; returns those commands.

        Raises requests.RequestException (or HeartbeatError) when the platform could not be reached
        or refused the beat; the caller's loop counts it as missed.
        """
        body = self.payload()
        resp = self._session.post(
            self.credentials.url(HEARTBEAT_PATH),
            json=body,
            headers={"Authorization": self.credentials.authorization},
            timeout=REQUEST_TIMEOUT_S,
        )
        if resp.status_code != 200:
            why = f"the platform answered {resp.status_code}: {resp.text[:300]}"
            raise HeartbeatError(why, retry_after_s=retry_after_s(resp))
        reply = resp.json()
        sent = {a["id"] for a in body["acks"]}
        with self._lock:
            self._acks = [a for a in self._acks if a["id"] not in sent]
        interval = reply.get("interval_s")
        if isinstance(interval, int | float) and MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            self.interval_s = float(interval)
        commands: list[Command] = list(reply.get("commands") or [])
        for command in commands:
            self._run(command)
        return commands

    def _run(self, command: Command) -> None:
        try:
            detail = self.on_command(command)
            ack = {"id": command["id"], "ok": True, "detail": detail or ""}
        except Exception as exc:  # the command failed; the platform shows why
            log.warning("command %s (%s) failed: %s", command.get("id"), command.get("kind"), exc)
            ack = {"id": command["id"], "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:1000]}
        with self._lock:
            self._acks.append(ack)

    # -- the loop ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._owns_session:
            self._session.close()  # the kept-alive connection to the platform, not left to the collector

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                commands = self.beat_once()
                self.last_ok, self.last_error = True, None
            except (requests.RequestException, HeartbeatError, ValueError) as exc:
                self.last_ok, self.last_error = False, str(exc)
                log.warning("heartbeat failed: %s", exc)
                commands = []
                # the platform's Retry-After, when it asks for longer than an interval.
                told = getattr(exc, "retry_after_s", None)
                if told is not None and told > self.interval_s:
                    self._stop.wait(told)
                    continue
            # Acknowledge what just ran without waiting a whole interval.
            wait = 0.0 if commands else self.interval_s
            self._stop.wait(wait)


class HeartbeatError(Exception):
    """The platform refused a heartbeat (revoked credentials, a gateway removed, a server error)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
