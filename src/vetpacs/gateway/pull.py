"""Query/retrieve from the clinic's PACS (R-6.1.2): studies the gateway has not collected yet are pulled.

`vetpacs-gateway pull`, and every `pull_interval_s` inside `run`: a Study Root C-FIND to the clinic's
PACS (`pacs_ae_title`, `pacs_host`, `pacs_port`) for the studies of the last `pull_days` days of the
configured modalities, then a C-MOVE of each study not collected yet to the gateway's own SCP (or a
C-GET on the same association, `pull_retrieve = "get"`). Either way every instance enters through
the SCP's one entry point, the spool (fsync, queue row, then Success), so a pulled image goes
through the same pipeline and upload as one a modality sent. What was pulled is remembered in
`pull.sqlite3` (study UID and how many instances the PACS said it had): a repeated pull retrieves
nothing, and a study that grew on the PACS is retrieved again (the spool answers an instance it
already holds without queueing it twice, so nothing is uploaded twice).
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from vetpacs.core.errors import DimseStatus
from vetpacs.gateway.config import GatewayConfig
from vetpacs.gateway.queue import Queue
from vetpacs.gateway.scp import handle_store, start_scp
from vetpacs.gateway.spool import Spool
from vetpacs.gateway.statefile import StateFile

log = logging.getLogger("vetpacs.gateway.pull")

PULL_FILE = "pull.sqlite3"
RETRIEVE_METHODS = ("move", "get")
# PS3.4 C.4.1.1.4: 0xFF00/0xFF01 pending (a match follows); 0x0000 the last answer.
PENDING_STATUSES = frozenset({0xFF00, 0xFF01})
# PS3.4 C.4.2.1.5 / C.4.3.1.5: 0xB000 sub-operations complete with failures or warnings.
SUBOPERATIONS_WARNING = 0xB000
# A C-GET proposes its storage contexts with the find/get ones: 128 in all (PS3.8 9.3.2.2).
MAX_CONTEXTS = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pulled (
    study_instance_uid TEXT PRIMARY KEY,
    instances INTEGER NOT NULL,
    pulled_at REAL NOT NULL
);
"""


class PullError(Exception):
    """The PACS could not be queried (no association, a refused C-FIND); the message says why."""


@dataclass(frozen=True)
class PullSource:
    """The clinic's PACS to query, and what to ask it for."""

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "VETPACS_GW"
    days: int = 7  # studies of today and the days before; 0: any date
    modalities: tuple[str, ...] = ()  # empty: every modality
    retrieve: str = "move"  # C-MOVE to calling_ae_title, or C-GET on the query's association


@dataclass
class PullResult:
    found: int = 0
    already: int = 0  # collected before (pulled, or sent by the modality itself)
    pulled: list[str] = field(default_factory=list)
    instances: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"{self.found} studies found, {self.already} already collected, {len(self.pulled)} pulled"
            f" ({self.instances} instances)"
        )
        if self.failed:
            text += f", {len(self.failed)} failed: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items())
        return text


class PullState(StateFile):
    """What the gateway pulled, by study: its own SQLite file beside the queue."""

    SCHEMA = _SCHEMA

    def instances(self, study_instance_uid: str) -> int | None:
        """How many instances the study had when it was pulled (None: never pulled)."""
        with self._db() as db:
            row = db.execute(
                "SELECT instances FROM pulled WHERE study_instance_uid = ?", (study_instance_uid,)
            ).fetchone()
        return None if row is None else int(row[0])

    def remember(self, study_instance_uid: str, instances: int) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO pulled (study_instance_uid, instances, pulled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (study_instance_uid) DO UPDATE SET instances = excluded.instances,"
                " pulled_at = excluded.pulled_at",
                (study_instance_uid, instances, time.time()),
            )

    def count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM pulled").fetchone()[0])


def date_range(days: int, today: dt.date | None = None) -> str:
    """The C-FIND StudyDate range for the last `days` days including today ('' for any date)."""
    if days <= 0:
        return ""
    today = today or dt.date.today()
    start = today - dt.timedelta(days=days - 1)
    return f"{start:%Y%m%d}-{today:%Y%m%d}"


def study_query(source: PullSource, modality: str = "", today: dt.date | None = None) -> Dataset:
    """A Study Root C-FIND identifier: the matching keys and the return keys the pull uses."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.StudyDate = date_range(source.days, today)
    ds.ModalitiesInStudy = modality
    ds.PatientID = ""
    ds.AccessionNumber = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class Puller:
    """One clinic PACS, pulled into one spool; `pull_once()` does a whole round."""

    def __init__(
        self,
        source: PullSource,
        spool: Spool,
        queue: Queue,
        state: PullState,
        *,
        on_accepted: Callable[[Any], None] | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        if source.retrieve not in RETRIEVE_METHODS:
            raise ValueError(f"pull_retrieve must be one of {RETRIEVE_METHODS}, not {source.retrieve!r}")
        self.source = source
        self.spool = spool
        self.queue = queue
        self.state = state
        self.on_accepted = on_accepted
        self.today = today
        self.last_result: PullResult | None = None
        self.last_error = ""
        self._ae = self._make_ae()

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.source.calling_ae_title)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        if self.source.retrieve == "move":
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        else:
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
            room = MAX_CONTEXTS - len(ae.requested_contexts)
            for cx in StoragePresentationContexts[:room]:
                ae.add_requested_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.acse_timeout = 30
        ae.network_timeout = 60
        ae.dimse_timeout = 600  # a C-MOVE's answer comes after the whole study was sent
        return ae

    @contextmanager
    def _associate(self) -> Iterator[Association]:
        src = self.source
        kwargs: dict[str, Any] = {"ae_title": src.ae_title}
        if src.retrieve == "get":
            # C-GET: the PACS sends the instances back on this association; we take the SCP role.
            queries = (StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet)
            kwargs["ext_neg"] = [
                build_role(str(cx.abstract_syntax), scp_role=True)
                for cx in self._ae.requested_contexts
                if cx.abstract_syntax not in queries
            ]
            source = f"pull:{src.ae_title}"
            kwargs["evt_handlers"] = [
                (evt.EVT_C_STORE, handle_store, [self.spool, self.on_accepted, source]),
            ]
        assoc = self._ae.associate(src.host, src.port, **kwargs)
        if not assoc.is_established:
            raise PullError(
                f"the clinic PACS {src.ae_title}@{src.host}:{src.port} refused the association"
                " or did not answer"
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def find(self, assoc: Association) -> list[Dataset]:
        """The studies in the window, once each (one C-FIND per configured modality)."""
        found: dict[str, Dataset] = {}
        for modality in self.source.modalities or ("",):
            query = study_query(self.source, modality, self.today())
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise PullError("the C-FIND got no answer (timeout or aborted association)")
                code = int(status.Status)
                if code in PENDING_STATUSES and identifier is not None:
                    uid = str(identifier.get("StudyInstanceUID") or "")
                    if uid:
                        found.setdefault(uid, identifier)
                elif code != DimseStatus.SUCCESS:
                    raise PullError(f"the PACS refused the C-FIND (status 0x{code:04X})")
        return list(found.values())

    def _retrieve(self, assoc: Association, study_uid: str) -> tuple[int, str]:
        """C-MOVE or C-GET one study: (instances completed, '' or why it failed)."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        if self.source.retrieve == "move":
            responses = assoc.send_c_move(
                ds, self.source.calling_ae_title, StudyRootQueryRetrieveInformationModelMove
            )
        else:
            responses = assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet)
        final: Dataset | None = None
        for status, _identifier in responses:
            if not status:
                return 0, "no answer to the retrieve (timeout or aborted association)"
            if int(status.Status) not in PENDING_STATUSES:
                final = status
        if final is None:
            return 0, "the retrieve ended without a final status"
        code = int(final.Status)
        completed = _int(final.get("NumberOfCompletedSuboperations"))
        warnings = _int(final.get("NumberOfWarningSuboperations"))
        failed = _int(final.get("NumberOfFailedSuboperations"))
        if code == DimseStatus.SUCCESS or (code == SUBOPERATIONS_WARNING and failed == 0):
            return completed + warnings, ""
        comment = str(final.get("ErrorComment") or "")
        return completed + warnings, f"status 0x{code:04X}, {failed} sub-operations failed {comment}".strip()

    def pull_once(self) -> PullResult:
        """Query the PACS and retrieve every study not collected yet; raises PullError if it cannot ask."""
        result = PullResult()
        with self._associate() as assoc:
            studies = self.find(assoc)
            result.found = len(studies)
            for identifier in studies:
                uid = str(identifier.StudyInstanceUID)
                on_pacs = _int(identifier.get("NumberOfStudyRelatedInstances"))
                pulled = self.state.instances(uid)
                if pulled is not None and on_pacs <= pulled:
                    result.already += 1
                    continue
                if pulled is None and on_pacs and self.queue.count_study(uid) >= on_pacs:
                    # The modality sent it to the gateway as well as to the PACS: nothing to fetch.
                    self.state.remember(uid, on_pacs)
                    result.already += 1
                    continue
                completed, why = self._retrieve(assoc, uid)
                result.instances += completed
                if why:
                    result.failed[uid] = why
                    log.warning("pull of study %s: %s", uid, why)
                    continue
                self.state.remember(uid, max(on_pacs, completed))
                result.pulled.append(uid)
        self.last_result = result
        return result


class PullScheduler:
    """`run`'s pull: a round every `interval_s`, the first at start; a failed round is logged, tried again."""

    def __init__(self, puller: Puller, interval_s: float) -> None:
        self.puller = puller
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_at = ""  # when the last round ended (local time), whether it pulled or failed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pacs-pull", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.puller.pull_once()
                self.puller.last_error = ""
                log.info("pull from the clinic PACS: %s", result.summary())
            except Exception as exc:  # the PACS down or refusing: try again next round
                self.puller.last_error = str(exc)
                log.warning("pull from the clinic PACS failed: %s", exc)
            self.last_at = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
            self._stop.wait(self.interval_s)

    def status(self) -> dict[str, Any]:
        last = self.puller.last_result
        return {
            "last_at": self.last_at,
            "last_pull": last.summary() if last is not None else "",
            "last_error": self.puller.last_error,
            "studies_pulled": self.puller.state.count(),
        }


def puller_for(
    config: GatewayConfig, spool: Spool, queue: Queue, *, on_accepted: Callable[[Any], None] | None = None
) -> Puller:
    if not (config.pacs_host and config.pacs_ae_title):
        raise PullError("no clinic PACS is configured (pacs_host, pacs_port, pacs_ae_title in gateway.toml)")
    source = PullSource(
        ae_title=config.pacs_ae_title,
        host=config.pacs_host,
        port=config.pacs_port,
        calling_ae_title=config.ae_title,
        days=config.pull_days,
        modalities=config.pull_modalities,
        retrieve=config.pull_retrieve,
    )
    return Puller(source, spool, queue, PullState(config.pull_path), on_accepted=on_accepted)


def scp_allow_list(config: GatewayConfig) -> tuple[str, ...]:
    """The calling AE titles the SCP takes: a C-MOVE's instances come from the PACS itself."""
    allowed = config.allowed_calling_aes
    if allowed and config.pacs_ae_title and config.pacs_ae_title not in allowed:
        allowed = (*allowed, config.pacs_ae_title)
    return allowed


# -- the subcommand ------------------------------------------------------------------------------------
def add_pull(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pull", help="C-FIND the clinic PACS and retrieve the studies not collected yet")
    p.add_argument(
        "--config-dir",
        default="/etc/vetpacs-gateway",
        help="folder holding gateway.toml and credentials.json (default /etc/vetpacs-gateway)",
    )
    p.add_argument("--days", type=int, help="studies of the last DAYS days (0: any date); default pull_days")
    p.set_defaults(func=cmd_pull)


def cmd_pull(args: argparse.Namespace) -> int:
    from vetpacs.gateway.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {} if args.days is None else {"pull_days": args.days}
    config = load_config(Path(args.config_dir).expanduser(), **overrides)
    queue = Queue(config.queue_path)
    # clean_tmp=False: a running gateway's SCP may be writing its temporary files right now.
    spool = Spool(config.spool_dir, queue, min_free_bytes=config.min_free_bytes, clean_tmp=False)
    scp = None
    if config.pull_retrieve == "move":
        # C-MOVE sends to the gateway's SCP: `run`'s if it is running, else one here for this pull.
        try:
            scp = start_scp(
                spool,
                ae_title=config.ae_title,
                host=config.dicom_host,
                port=config.dicom_port,
                allowed_calling_aes=scp_allow_list(config),
            )
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.info("port %s is in use: the running gateway receives the pulled studies", config.dicom_port)
    try:
        result = puller_for(config, spool, queue).pull_once()
    except PullError as exc:
        print(f"vetpacs-gateway pull: {exc}", file=sys.stderr)
        return 1
    finally:
        if scp is not None:
            scp.shutdown()
        queue.close()
    print(result.summary())
    return 1 if result.failed else 0


__all__ = ["PullError", "PullResult", "PullScheduler", "PullSource", "PullState", "Puller", "study_query"]
