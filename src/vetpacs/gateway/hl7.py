"""HL7 v2 over MLLP from the clinic's HIS/RIS: ADT^A01/A04/A08 and ORM^O01/OMI^O23 become records (R-6.1.2).

Every message is answered: AA once the record is stored (fsynced in records.sqlite3), AE with the
reason when it cannot be used (an unsupported type, no Patient ID), so the HIS can show or resend.
Field mapping (HL7 v2.5): PID-3 Patient ID, PID-5 name, PID-7 birth date, PID-8 sex, PID-35 species,
PID-36 breed, NK1-2/4/5 owner (responsible person), address and phone; ORC-12/OBR-16 requesting
vet, OBR-18, IPC-1 or ORC-3 accession, OBR-4 the requested procedure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import hl7
import requests
from hl7.mllp import start_hl7_server

from vetpacs.gateway.credentials import Credentials, load_credentials
from vetpacs.gateway.records import RECORDS_FILE, RecordError, RecordStore
from vetpacs.gateway.watch import FolderWatcher

log = logging.getLogger(__name__)

ADT_EVENTS = ("A01", "A04", "A08")
ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
APPLICATION = "VETPACS_GW"


class MessageError(Exception):
    """The message cannot become a record; the text goes back in MSA-3 of an AE acknowledgement."""


# PID-8 values beyond HL7 table 0001 that veterinary systems send: male/female neutered (castrated, spayed).
VETERINARY_SEX = frozenset({"MN", "MC", "FS", "FN"})


def _get(msg: hl7.Message, key: str) -> str:
    """A value by `SEG.field` or `SEG.field.component` (first repetition), "" when absent."""
    parts = key.split(".")
    if len(parts) == 3:
        key = f"{parts[0]}.F{parts[1]}.R1.C{parts[2]}"
    try:
        value = msg[key]
    except (IndexError, KeyError):
        return ""
    return str(value).strip() if value is not None else ""


def _person(msg: hl7.Message, field: str) -> str:
    """An XPN/XCN name as DICOM PN (Family^Given); XCN starts with an id component."""
    family, given = _get(msg, f"{field}.1"), _get(msg, f"{field}.2")
    if field.startswith(("ORC.12", "OBR.16")):  # XCN: id^family^given
        family, given = _get(msg, f"{field}.2"), _get(msg, f"{field}.3")
    return f"{family}^{given}" if given else family


def to_record(msg: hl7.Message) -> tuple[str, str, dict[str, str]]:
    """(source id, kind, fields) of a supported message, or MessageError saying why not."""
    kind_code, event = _get(msg, "MSH.9.1"), _get(msg, "MSH.9.2")
    control_id = _get(msg, "MSH.10")
    if not control_id:
        raise MessageError("MSH-10 (message control id) is empty")
    if kind_code == "ADT" and event in ADT_EVENTS:
        kind = "patient"
    elif (kind_code, event) in ORDER_TYPES:
        kind = "order"
    else:
        raise MessageError(f"{kind_code}^{event} is not accepted (ADT^A01/A04/A08, ORM^O01, OMI^O23)")
    try:
        msg.segment("PID")
    except KeyError:
        raise MessageError("the message has no PID segment") from None
    fields = {
        "patient_id": _get(msg, "PID.3.1"),
        "patient_name": _person(msg, "PID.5"),
        "patient_birth_date": _get(msg, "PID.7")[:8],
        "patient_sex": _get(msg, "PID.8").upper(),
        "species": _get(msg, "PID.35.2") or _get(msg, "PID.35.1"),
        "breed": _get(msg, "PID.36.2") or _get(msg, "PID.36.1"),
    }
    try:
        msg.segment("NK1")
        fields["owner"] = _person(msg, "NK1.2")
        fields["owner_phone"] = _get(msg, "NK1.5.1")
        fields["owner_address"] = " ".join(filter(None, (_get(msg, f"NK1.4.{c}") for c in (1, 2, 3, 4))))
    except KeyError:
        pass
    if kind == "order":
        fields["accession_number"] = _get(msg, "OBR.18") or _get(msg, "IPC.1") or _get(msg, "ORC.3.1")
        fields["referring_physician_name"] = _person(msg, "ORC.12") or _person(msg, "OBR.16")
        fields["study_description"] = _get(msg, "OBR.4.2") or _get(msg, "OBR.4.1")
        fields["modality"] = _get(msg, "IPC.5") or _get(msg, "OBR.24")
    if not fields["patient_id"]:
        raise MessageError("PID-3 (Patient ID) is empty")
    sex = fields["patient_sex"]
    # Practice software writes the neuter status in PID-8 too (MN, FS): kept, so the pipeline sets
    # Patient's Sex and Patient Sex Neutered from it.
    if sex and sex not in VETERINARY_SEX:
        fields["patient_sex"] = sex[:1] if sex[:1] in ("M", "F", "O") else "O"
    return f"hl7:{_get(msg, 'MSH.4') or _get(msg, 'MSH.3')}:{control_id}", kind, fields


def handle(store: RecordStore, raw: str) -> hl7.Message:
    """Store one message; return its acknowledgement (AA, AE with the reason, or AR if unreadable)."""
    try:
        msg = hl7.parse(raw)
    except Exception as exc:  # hl7.parse raises several types on garbage
        return _reject(str(exc))
    try:
        source_id, kind, fields = to_record(msg)
        store.put(source_id=source_id, kind=kind, fields=fields)
    except (MessageError, RecordError) as exc:
        ack = msg.create_ack("AE", application=APPLICATION)
        ack["MSA.3"] = _text(str(exc))
        log.warning("HL7 %s refused: %s", _get(msg, "MSH.10"), exc)
        return ack
    return msg.create_ack("AA", application=APPLICATION)


def _text(value: str) -> str:
    """Free text for MSA-3: HL7's separators would split it into components, so they become spaces."""
    return "".join(" " if c in "|^~\\&\r\n" else c for c in value)[:80]


def _reject(reason: str) -> hl7.Message:
    """AR for bytes that are not an HL7 message at all (no MSH to answer to)."""
    text = f"MSH|^~\\&|{APPLICATION}||||||ACK|0|P|2.5\rMSA|AR||{_text(reason)}"
    return hl7.parse(text)


class Hl7Listener:
    """An MLLP server in its own thread; `port` is the bound port (0 picks a free one)."""

    def __init__(self, store: RecordStore, host: str = "0.0.0.0", port: int = 2575) -> None:  # noqa: S104
        self.store = store
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _client(self, reader: Any, writer: Any) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                ack = await asyncio.to_thread(handle, self.store, str(message))
                writer.writemessage(ack)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the HIS closed the connection
        except Exception:
            log.exception("MLLP connection failed")
        finally:
            writer.close()

    async def _serve(self) -> None:
        # UTF-8: Chinese names and procedures (MSH-18 UNICODE UTF-8 is what Chinese HIS send today).
        self._server = await start_hl7_server(
            self._client, host=self.host, port=self.port, encoding="utf-8", encoding_errors="replace"
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # an unusable port: start() reports it
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="hl7-mllp", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            for task in asyncio.all_tasks(self._loop) if not self._loop.is_closed() else ():
                self._loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)


class RecordsService:
    """HIS/RIS records at the clinic: the MLLP listener, a CSV/JSON drop folder, and the upload of
    new records to the platform every `upload_interval_s` (R-6.1.2). Each part is optional."""

    def __init__(
        self,
        store: RecordStore,
        *,
        credentials: Credentials | None = None,
        hl7_host: str = "0.0.0.0",  # noqa: S104 - the HIS is on the clinic's LAN
        hl7_port: int | None = 2575,
        drop_folder: Path | None = None,
        upload_interval_s: float = 30.0,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.listener = Hl7Listener(store, hl7_host, hl7_port) if hl7_port is not None else None
        self.watcher = (
            FolderWatcher(drop_folder, self.store.import_file, sidecars=False) if drop_folder else None
        )
        self.upload_interval_s = upload_interval_s
        self.last_upload_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.credentials is not None:
            self._thread = threading.Thread(target=self._upload_loop, name="records-upload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self._thread is not None:
            self._thread.join(10)

    def upload_now(self) -> int:
        assert self.credentials is not None  # noqa: S101 - start() runs the loop only with credentials
        try:
            sent = self.store.upload(self.credentials)
        except (RecordError, requests.RequestException) as exc:
            self.last_upload_error = str(exc)
            log.warning("records upload failed: %s", exc)
            return 0
        self.last_upload_error = ""
        return sent

    def _upload_loop(self) -> None:
        while not self._stop.is_set():
            self.upload_now()
            self._stop.wait(self.upload_interval_s)


# -- the subcommand ------------------------------------------------------------------------------------
def add_hl7(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("hl7", help="HL7 v2 MLLP listener and CSV/JSON import of HIS records")
    p.add_argument("--records-dir", type=Path, default=Path("/var/lib/vetpacs-gateway"))
    p.add_argument("--host", default="0.0.0.0")  # noqa: S104 - the HIS is on the clinic's LAN
    p.add_argument("--port", type=int, default=2575)
    p.add_argument(
        "--import", dest="import_files", nargs="*", type=Path, help="import CSV/JSON files and exit"
    )
    p.set_defaults(func=cmd_hl7)


def cmd_hl7(args: argparse.Namespace) -> int:
    store = RecordStore(args.records_dir / RECORDS_FILE)
    if args.import_files:
        for path in args.import_files:
            try:
                print(f"{path}: {store.import_file(path)} records")
            except (RecordError, OSError) as exc:
                print(f"vetpacs-gateway hl7: {exc}", file=sys.stderr)
                return 1
        return 0
    credentials = load_credentials(args.config_dir) if args.config_dir else None
    service = RecordsService(
        store, credentials=credentials, hl7_host=args.host, hl7_port=args.port, drop_folder=args.drop_folder
    )
    service.start()
    assert service.listener is not None  # noqa: S101 - a port was given
    print(f"HL7 MLLP listening on {args.host}:{service.listener.port} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        service.stop()
    return 0
