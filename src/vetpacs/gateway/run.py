"""`vetpacs-gateway run`: the SCP, the uploader, watch folders, the heartbeat and the status page together."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

from vetpacs.gateway.config import GatewayConfig
from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.protect import load_recipient
from vetpacs.gateway.queue import Queue
from vetpacs.gateway.records import RecordStore
from vetpacs.gateway.scp import start_scp
from vetpacs.gateway.spool import Spool
from vetpacs.gateway.status import Snapshot, StatusServer, snapshot
from vetpacs.gateway.uploader import UploaderSettings, UploadService

log = logging.getLogger("vetpacs.gateway")


def apply_action(queue: Queue, action: str, *, entry_id: int | None = None, study: str | None = None) -> int:
    """stop / resume / retry an entry, a study or (neither) everything: the CLI, page and platform alike."""
    if action == "stop":
        return queue.stop(entry_id=entry_id, study=study)
    if action == "resume":
        return queue.resume(entry_id=entry_id, study=study)
    if action == "retry":
        return queue.retry(entry_id=entry_id, study=study)
    raise ValueError(f"unknown action {action!r}")


def uploader_settings(config: GatewayConfig, credentials: Credentials) -> UploaderSettings:
    return UploaderSettings(
        platform_url=config.platform_url or credentials.platform_url,
        token=credentials.secret,
        parallel_uploads=config.parallel_uploads,
        chunk_size=config.chunk_size,
        parallel_parts=config.parallel_parts,
        parallel_parts_min_bytes=config.parallel_parts_min_bytes,
        bandwidth_bytes_per_s=config.bandwidth_bytes_per_s,
        retry_base_s=config.retry_base_s,
        retry_cap_s=config.retry_cap_s,
        request_timeout_s=config.request_timeout_s,
        compress=config.compress,
    )


def _upload_main(config: GatewayConfig, credentials: Credentials, stop: Any, parent_pid: int) -> None:
    """The uploader process: works the queue until told to stop or its parent is gone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queue = Queue(config.queue_path)
    spool = Spool(config.spool_dir, queue, min_free_bytes=config.min_free_bytes, clean_tmp=False)
    recipient = load_recipient(credentials.platform_public_key_pem) if config.protect_identity else None
    records = RecordStore(config.records_path)
    service = UploadService(
        queue, spool, uploader_settings(config, credentials), recipient=recipient, records=records
    )
    service.start()
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:  # the gateway died (kill -9): nothing may upload on its own
            break
    service.shutdown()


class UploaderProcess:
    """UploadService in a child process (spawned, not forked: the parent runs threads)."""

    def __init__(self, config: GatewayConfig, credentials: Credentials) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_upload_main,
            args=(config, credentials, self._stop, os.getpid()),
            name="vetpacs-gateway-uploader",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()

    def wake(self) -> None:
        """The child polls the queue several times a second; nothing to signal across processes."""

    def shutdown(self, timeout: float = 20.0) -> None:
        if self._process.pid is None:
            return
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class Gateway:
    """Everything `run` starts; `start()` then `wait()`; `shutdown()` on SIGTERM/SIGINT."""

    def __init__(self, config: GatewayConfig, credentials: Credentials) -> None:
        self.config = config
        self.credentials = credentials
        self.queue = Queue(config.queue_path)
        recovered = self.queue.recover()
        if recovered:
            log.info("resuming %s uploads a previous run left unfinished", recovered)
        self.spool = Spool(config.spool_dir, self.queue, min_free_bytes=config.min_free_bytes)
        if config.protect_identity:
            load_recipient(credentials.platform_public_key_pem)  # refuse to start without a usable key
        # The uploader and its pipeline (compression, encryption, hashing) run in a process of their
        # own: the SCP keeps a core and the interpreter lock to itself, so a modality is never slowed
        # by uploads. The two meet only in the queue file, which is safe across processes.
        self.uploader = UploaderProcess(config, credentials)
        self._done = threading.Event()
        self.scp: Any = None
        self.status_server: StatusServer | None = None
        self.watchers: list[Any] = []
        self.heartbeat: Any = None
        self.report_returner: Any = None
        self.pull_scheduler: Any = None
        self.records_service: Any = None

    # -- status and commands ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        snap = snapshot(self.queue, self.spool)
        if self.pull_scheduler is not None:
            snap.pull = self.pull_scheduler.status()
        return snap

    def status_fn(self) -> dict[str, Any]:
        """For the heartbeat: version, queue_depth, failures, disk_free_bytes (and a little more)."""
        status = self.snapshot().heartbeat()
        if self.report_returner is not None:
            status["report_returns"] = self.report_returner.status()
        if self.pull_scheduler is not None:
            status["pull"] = self.pull_scheduler.status()
        return status

    def act(self, action: str, study: str | None = None, entry_id: int | None = None) -> int:
        n = apply_action(self.queue, action, entry_id=entry_id, study=study)
        self.uploader.wake()
        return n

    def on_command(self, command: dict[str, Any]) -> str:
        """A command from the platform's heartbeat reply: retry_all, stop, resume."""
        kind = str(command.get("kind") or command.get("command") or "")
        args = command.get("args") or {}
        entry_id = int(args["entry"]) if args.get("entry") not in (None, "") else None
        study = args.get("study") or None
        if kind == "retry_all":
            return f"{self.act('retry')} entries retried"
        if kind in ("stop", "resume", "retry"):
            return f"{self.act(kind, study=study, entry_id=entry_id)} entries: {kind}"
        if kind == "send_report":
            if self.report_returner is None:
                raise ValueError("send_report: no clinic PACS is configured (pacs_host, pacs_ae_title)")
            return str(self.report_returner.on_command(command))
        raise ValueError(f"unknown command {kind!r}")

    # -- sources ---------------------------------------------------------------------------------

    def on_watched_file(self, path: Path) -> None:
        """A file from a watch folder: converted to DICOM, each object through the same spool as the SCP."""
        from vetpacs.gateway.convert import convert_file
        from vetpacs.gateway.convert.attributes import read_sidecar

        for ds in convert_file(path, sidecar=read_sidecar(path)):
            self.spool.accept_dataset(ds, source=f"watch:{path.name}")
        self.uploader.wake()

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, *, heartbeat: bool = True) -> None:
        from vetpacs.gateway.pull import scp_allow_list

        cfg = self.config
        self.uploader.start()
        if cfg.hl7_port or cfg.records_drop_folder:
            from vetpacs.gateway.hl7 import RecordsService

            if cfg.records_drop_folder:
                Path(cfg.records_drop_folder).mkdir(parents=True, exist_ok=True)
            # HIS records enrich what the pipeline prepares (the uploader reads the same file) and
            # are uploaded as records. Listening before the SCP does: once `run` takes images, it
            # takes the orders that describe them.
            self.records_service = RecordsService(
                RecordStore(cfg.records_path),
                credentials=self.credentials if heartbeat else None,
                hl7_host=cfg.hl7_host,
                hl7_port=cfg.hl7_port or None,
                drop_folder=Path(cfg.records_drop_folder) if cfg.records_drop_folder else None,
            )
            self.records_service.start()
        self.scp = start_scp(
            self.spool,
            ae_title=cfg.ae_title,
            host=cfg.dicom_host,
            port=cfg.dicom_port,
            allowed_calling_aes=scp_allow_list(cfg),
            on_accepted=lambda _accepted: self.uploader.wake(),
        )
        self.status_server = StatusServer(cfg.status_host, cfg.status_port, self.snapshot, self.act)
        self.status_server.start()
        for folder in cfg.watch_folders:
            from vetpacs.gateway.watch import FolderWatcher

            folder.mkdir(parents=True, exist_ok=True)
            watcher = FolderWatcher(folder, self.on_watched_file)
            watcher.start()
            self.watchers.append(watcher)
        if cfg.pacs_host:
            from vetpacs.gateway.report_return import PacsTarget, ReportReturner

            pacs = PacsTarget(cfg.pacs_ae_title or "PACS", cfg.pacs_host, cfg.pacs_port, cfg.ae_title)
            self.report_returner = ReportReturner(
                self.credentials,
                pacs,
                cfg.spool_dir,
                retry_base_s=cfg.retry_base_s,
                retry_cap_s=cfg.retry_cap_s,
            )
            self.report_returner.start()
        if cfg.pull_interval_s:
            from vetpacs.gateway.pull import PullScheduler, puller_for

            wake = self.uploader.wake
            puller = puller_for(cfg, self.spool, self.queue, on_accepted=lambda _accepted: wake())
            self.pull_scheduler = PullScheduler(puller, cfg.pull_interval_s)
            self.pull_scheduler.start()
        if heartbeat:
            from vetpacs.gateway.heartbeat import HeartbeatClient

            self.heartbeat = HeartbeatClient(
                self.credentials, self.status_fn, self.on_command, disk_path=cfg.spool_dir
            )
            self.heartbeat.start()
        log.info(
            "gateway %s listening on %s:%s; status page %s",
            cfg.ae_title,
            cfg.dicom_host,
            self.dicom_port,
            self.status_server.url,
        )

    @property
    def dicom_port(self) -> int:
        return int(self.scp.server_address[1]) if self.scp is not None else self.config.dicom_port

    def shutdown(self) -> None:
        if self.pull_scheduler is not None:
            self.pull_scheduler.stop()
        if self.scp is not None:
            self.scp.shutdown()
        if self.records_service is not None:
            self.records_service.stop()
        for watcher in self.watchers:
            watcher.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.report_returner is not None:
            self.report_returner.stop()
        if self.status_server is not None:
            self.status_server.stop()
        self.uploader.shutdown()
        self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def run_forever(self, *, heartbeat: bool = True) -> None:
        def stop(signum: int, frame: Any) -> None:
            threading.Thread(target=self.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.start(heartbeat=heartbeat)
        self.wait()
