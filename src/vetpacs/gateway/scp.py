"""The DICOM receiver (R-6.1.1a/b): a pynetdicom Storage SCP whose handlers are bound to events.

C-ECHO, and C-STORE for every storage SOP class in every standard transfer syntax. A calling AE
title not on the allow-list is rejected at association. A received instance is in the spool
(fsynced) and its queue row committed before the SCP answers Success; a full spool answers
0xA700 Out of Resources, a dataset that cannot be read or validated answers a 0xC000-range or
0xA900 failure, and nothing is acknowledged falsely. Errors become DIMSE statuses in one place,
`dimse_errors`, as pynetdicom's `service_class.attempt` does for its own services.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from vetpacs.core.errors import DimseStatus, Errors, VetpacsError
from vetpacs.dicom.parse import validate
from vetpacs.gateway.spool import Spool

log = logging.getLogger("vetpacs.gateway.scp")

ERROR_COMMENT_MAX = 64
VERIFICATION = "1.2.840.10008.1.1"  # Verification SOP Class (C-ECHO)  # Error Comment (0000,0902) is LO


class _Outcome:
    def __init__(self) -> None:
        self.status = Dataset()
        self.status.Status = int(DimseStatus.SUCCESS)


@contextmanager
def dimse_errors(action: str) -> Iterator[_Outcome]:
    """The one translator from errors to a DIMSE status (core/errors.py carries each code's status)."""
    outcome = _Outcome()
    try:
        yield outcome
    except VetpacsError as exc:
        log.warning("%s refused: %s", action, exc)
        outcome.status.Status = int(exc.dimse_status)
        outcome.status.ErrorComment = f"{exc.code}: {exc.detail}"[:ERROR_COMMENT_MAX]
    except OSError as exc:
        log.exception("%s: spool I/O failed", action)
        outcome.status.Status = int(DimseStatus.OUT_OF_RESOURCES)
        outcome.status.ErrorComment = f"spool I/O: {exc.strerror or exc}"[:ERROR_COMMENT_MAX]
    except Exception as exc:  # a decode error of any kind: the dataset could not be understood
        log.exception("%s failed", action)
        outcome.status.Status = int(DimseStatus.CANNOT_UNDERSTAND)
        outcome.status.ErrorComment = f"cannot understand: {exc}"[:ERROR_COMMENT_MAX]


def handle_echo(event: Any) -> int:
    return int(DimseStatus.SUCCESS)


def handle_store(event: Any, spool: Spool, on_accepted: Any = None, source: str | None = None) -> Dataset:
    """Spool and queue the instance, then answer; any failure is a failure status, never Success.

    `source` names where it came from when the sender is not the calling AE (a C-GET's sub-operation
    arrives on the gateway's own association: `pull:<PACS AE>`).
    """
    calling = event.assoc.requestor.ae_title.strip()
    with dimse_errors(f"C-STORE from {calling}") as outcome:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:
            raise VetpacsError(Errors.NOT_DICOM, f"the dataset cannot be decoded: {exc}") from None
        validate(ds)
        accepted = spool.accept_bytes(event.encoded_dataset(), ds, source=source or f"dicom:{calling}")
        if on_accepted is not None:
            on_accepted(accepted)
    return outcome.status


def make_ae(ae_title: str, allowed_calling_aes: tuple[str, ...] = ()) -> AE:
    ae = AE(ae_title=ae_title)
    ae.add_supported_context(VERIFICATION, ALL_TRANSFER_SYNTAXES)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
    if allowed_calling_aes:
        ae.require_calling_aet = list(allowed_calling_aes)
    ae.maximum_pdu_size = 0  # no limit on what we accept per P-DATA
    ae.network_timeout = 60
    ae.dimse_timeout = 120
    return ae


def start_scp(
    spool: Spool,
    *,
    ae_title: str,
    host: str,
    port: int,
    allowed_calling_aes: tuple[str, ...] = (),
    on_accepted: Any = None,
) -> ThreadedAssociationServer:
    """Listen in the background; `server.shutdown()` stops it. Port 0 takes a free port."""
    ae = make_ae(ae_title, allowed_calling_aes)
    handlers: list[Any] = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [spool, on_accepted]),
    ]
    server = ae.start_server((host, port), block=False, evt_handlers=handlers)
    assert server is not None
    return server
