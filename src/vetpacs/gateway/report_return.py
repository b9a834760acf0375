"""Report return (R-6.2.3d): fetch a report object from the platform and C-STORE it to the clinic's PACS.

The platform's `send_report` command names a WADO-RS URL (an Encapsulated PDF or SR instance, or any
stored instance). The gateway fetches it with its own credentials and stores it to the PACS
configured at the clinic, retrying with capped exponential back-off until the PACS accepts it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO

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
    http = session or requests.Session()
    try:
        resp = http.get(
            url, headers={"Authorization": credentials.authorization, "Accept": ACCEPT}, timeout=120
        )
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
