"""Report return (R-6.2.3d): fetch a report object from the platform and C-STORE it to the clinic's PACS.

The platform's `send_report` command names a WADO-RS URL (an Encapsulated PDF or SR instance, or any
stored instance). The gateway fetches it with its own credentials and stores it to the PACS
configured at the clinic, retrying with capped exponential back-off until the PACS accepts it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO
from pathlib import Path
from typing import Any

import requests
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.presentation import build_context

from vetpacs.gateway.credentials import Credentials

log = logging.getLogger(__name__)

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# PS3.4 B.2.3: 0x0000 success; 0xB000, 0xB007, 0xB006 are warnings that still mean "stored".
STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


class ReportReturnError(Exception):
    """The report could not be fetched or stored this time; the message says which and why."""


@dataclass(frozen=True)
class PacsTarget:
    """The clinic's PACS, as configured at the gateway."""

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "VETPACS_GW"


def fetch(url: str, credentials: Credentials, *, session: requests.Session | None = None) -> Dataset:
    """The one instance at a WADO-RS URL (multipart/related or application/dicom)."""
    if not url.startswith(credentials.platform_url):
        raise ReportReturnError(f"{url} is not on this gateway's platform ({credentials.platform_url})")
    headers = {"Authorization": credentials.authorization, "Accept": ACCEPT}
    try:
        # Without a session of the caller's, the connection is closed with the answer (requests.get).
        resp = (session or requests).get(url, headers=headers, timeout=120)
    except requests.RequestException as exc:
        raise ReportReturnError(f"the platform cannot be reached: {exc}") from exc
    if resp.status_code != 200:
        raise ReportReturnError(f"the platform answered {resp.status_code} for {url}")
    ctype = resp.headers.get("Content-Type", "")
    body = resp.content
    if ctype.startswith("multipart/"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        parts = [p.get_payload(decode=True) for p in message.iter_parts()]
        if len(parts) != 1:
            raise ReportReturnError(f"{url} holds {len(parts)} instances; a report is one")
        if not isinstance(parts[0], bytes):
            raise ReportReturnError(f"{url}: the multipart body has no instance")
        body = parts[0]
    return dcmread(BytesIO(body))


def c_store(ds: Dataset, pacs: PacsTarget) -> int:
    """C-STORE one dataset; returns the DIMSE status, or raises when no association could be made."""
    ae = AE(ae_title=pacs.calling_ae_title)
    syntaxes = [ds.file_meta.TransferSyntaxUID]
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        syntaxes += [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    ae.requested_contexts = [build_context(ds.SOPClassUID, list(dict.fromkeys(syntaxes)))]
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        raise ReportReturnError(f"the PACS {pacs.ae_title}@{pacs.host}:{pacs.port} refused or did not answer")
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if not status or "Status" not in status:
        raise ReportReturnError("the PACS did not answer the C-STORE")
    return int(status.Status)


def send_report(
    url: str,
    credentials: Credentials,
    pacs: PacsTarget,
    *,
    retry_base_s: float = 2.0,
    retry_cap_s: float = 300.0,
    stop: threading.Event | None = None,
    session: requests.Session | None = None,
) -> str:
    """Fetch and store until the PACS accepts (R-6.2.3d); returns what happened, for the command's ack."""
    stop = stop or threading.Event()
    delay = retry_base_s
    attempt = 0
    ds: Dataset | None = None
    while True:
        attempt += 1
        try:
            if ds is None:
                ds = fetch(url, credentials, session=session)
            status = c_store(ds, pacs)
            if status in STORED_STATUSES:
                return (
                    f"stored {ds.SOPInstanceUID} at {pacs.ae_title} "
                    f"(attempt {attempt}, status 0x{status:04X})"
                )
            error = f"the PACS answered status 0x{status:04X}"
        except ReportReturnError as exc:
            error = str(exc)
        log.warning("report return attempt %d failed: %s; retrying in %.0f s", attempt, error, delay)
        if stop.wait(delay):
            raise ReportReturnError(f"stopped after {attempt} attempts; last: {error}")
        delay = min(delay * 2, retry_cap_s)


# -- durable queue of report returns ------------------------------------------------------------------
RETURNS_FILE = "report_returns.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_returns (
    command_id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    next_try REAL NOT NULL DEFAULT 0
);
"""


class ReportReturner:
    """Runs `send_report` commands in the background, surviving restarts (report_returns.sqlite3).

    The heartbeat must keep beating while a PACS is down, so `on_command` only records the command
    (the ack says it was queued) and a worker thread fetches and stores it, retrying with capped
    exponential back-off until the PACS accepts; `status()` goes into the next heartbeats.
    """

    def __init__(
        self,
        credentials: Credentials,
        pacs: PacsTarget,
        state_dir: Path,
        *,
        retry_base_s: float = 2.0,
        retry_cap_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.pacs = pacs
        self.path = Path(state_dir) / RETURNS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with db:
                yield db
        finally:
            db.close()

    def on_command(self, command: dict[str, Any]) -> str:
        """Record a `send_report` command (the heartbeat's on_command for that kind)."""
        url = (command.get("args") or {}).get("url")
        if not isinstance(url, str) or not url.startswith(self.credentials.platform_url):
            raise ReportReturnError(f"send_report needs a WADO-RS URL on {self.credentials.platform_url}")
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO report_returns (command_id, url) VALUES (?, ?)",
                (int(command["id"]), url),
            )
        self._wake.set()
        return f"queued for {self.pacs.ae_title}@{self.pacs.host}:{self.pacs.port}"

    def run_due(self) -> int:
        """Try every pending return whose time has come; returns how many were stored."""
        now = self._clock()
        with self._db() as db:
            due = db.execute(
                "SELECT command_id, url, attempts FROM report_returns"
                " WHERE state = 'pending' AND next_try <= ? ORDER BY command_id",
                (now,),
            ).fetchall()
        stored = 0
        for command_id, url, attempts in due:
            try:
                ds = fetch(url, self.credentials)
                status = c_store(ds, self.pacs)
                if status not in STORED_STATUSES:
                    raise ReportReturnError(f"the PACS answered status 0x{status:04X}")
            except (ReportReturnError, OSError, ValueError) as exc:
                delay = min(self.retry_base_s * 2**attempts, self.retry_cap_s)
                with self._db() as db:
                    db.execute(
                        "UPDATE report_returns SET attempts = attempts + 1, last_error = ?, next_try = ?"
                        " WHERE command_id = ?",
                        (str(exc)[:500], self._clock() + delay, command_id),
                    )
                log.warning("report return %s failed (attempt %d): %s", command_id, attempts + 1, exc)
                continue
            with self._db() as db:
                db.execute(
                    "UPDATE report_returns SET state = 'done', attempts = attempts + 1, last_error = '',"
                    " result = ? WHERE command_id = ?",
                    (f"stored {ds.SOPInstanceUID} at {self.pacs.ae_title}", command_id),
                )
            stored += 1
        return stored

    def status(self) -> dict[str, Any]:
        """For the heartbeat: how many returns wait, and the last error if any."""
        with self._db() as db:
            pending, last_error = db.execute(
                "SELECT COUNT(*), MAX(last_error) FROM report_returns WHERE state = 'pending'"
            ).fetchone()
        return {"report_returns_pending": pending, "report_return_error": last_error or ""}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="report-return", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # keep serving whatever one return does
                log.exception("report return loop failed")
            self._wake.wait(timeout=1.0)
            self._wake.clear()
