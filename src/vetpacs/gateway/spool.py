"""The spool: received instances on disk (fsynced) and queued, before anyone is told they arrived.

The one entry point for every source (the SCP, watch folders, `convert`): `Spool.accept_bytes` /
`Spool.accept_dataset`. A file is written to a temporary name, fsynced, renamed into place and its
directory fsynced; then its queue row is committed. Only then does the caller answer success, so a
crash or power cut at any point loses nothing that was acknowledged (R-6.1.1a/b).

Group commit: instances arriving together (several associations at once) share one fsync of the
directory and one queue transaction (one fsync of the WAL), as a database's group commit does. Each
file's own data is fsynced by its own thread; each caller returns only once the group holding its
row has committed, so each C-STORE is still answered only after its own data is durable.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.gateway.queue import DONE, Queue

RECEIVED = "received"
READY = "ready"
TMP = "tmp"


@dataclass(frozen=True)
class Accepted:
    entry_id: int
    path: Path
    repeated: bool = False  # the very same bytes were already queued or uploaded


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(
    path: Path, data: bytes | io.BufferedIOBase, tmp_dir: Path, *, sync_dir: bool = True
) -> None:
    """Temporary name, fsync, rename, fsync the directory: the file is whole on disk or absent.

    sync_dir=False leaves the directory's fsync to the caller (the group commit does one for many).
    """
    fd, tmp = _mkstemp(tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                shutil.copyfileobj(data, f, 1024 * 1024)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def _mkstemp(tmp_dir: Path) -> tuple[int, str]:
    path = tmp_dir / f"{uuid.uuid4().hex}.part"
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(path)


class _Waiter:
    __slots__ = ("entry_id", "error", "lead", "row", "wake")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.wake = threading.Event()
        self.lead = False
        self.entry_id = 0
        self.error: BaseException | None = None

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        return self.entry_id


class GroupCommit:
    """Queue rows of files already fsynced and renamed into `folder`, committed in groups.

    Leader and followers, without a thread of its own: the first caller to find nobody committing
    leads; it fsyncs the folder once (every rename before it is then durable) and inserts every row
    waiting in one transaction; callers arriving meanwhile wait, and the first of them leads the next
    group. `commits` and `dir_fsyncs` count what was done, for profiling against `rows`.
    """

    def __init__(self, queue: Queue, folder: Path) -> None:
        self.queue = queue
        self.folder = folder
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._busy = False
        self.rows = 0
        self.commits = 0
        self.dir_fsyncs = 0

    def add(self, row: dict[str, Any]) -> int:
        me = _Waiter(row)
        with self._lock:
            self._waiting.append(me)
            lead = not self._busy
            self._busy = True
        if not lead:
            me.wake.wait()
            if not me.lead:
                return me.result()
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            fsync_dir(self.folder)
            ids = self.queue.add_many([w.row for w in group])
        except BaseException as exc:
            for w in group:
                w.error = exc
        else:
            for w, entry_id in zip(group, ids, strict=True):
                w.entry_id = entry_id
        with self._lock:
            self.rows += len(group)
            self.commits += 1
            self.dir_fsyncs += 1
            if self._waiting:  # arrived while this group committed: the first of them leads next
                self._waiting[0].lead = True
                self._waiting[0].wake.set()
            else:
                self._busy = False
        for w in group:
            w.wake.set()
        return me.result()


class Spool:
    """Files under spool_dir: received/ (as they came), ready/ (after the pipeline), tmp/."""

    def __init__(self, root: Path, queue: Queue, *, min_free_bytes: int = 0, clean_tmp: bool = True) -> None:
        self.root = Path(root)
        self.queue = queue
        self.min_free_bytes = min_free_bytes
        for sub in (RECEIVED, READY, TMP):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.group_commit = GroupCommit(queue, self.root / RECEIVED)
        # Temporary files a crash left behind were never acknowledged: they go (the process that
        # owns the spool does this at start, never a helper process while the SCP is writing).
        if clean_tmp:
            for stale in (self.root / TMP).glob("*.part"):
                stale.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _check_space(self, size: int) -> None:
        free = self.free_bytes()
        if free - size < self.min_free_bytes:
            raise VetpacsError(
                Errors.GATEWAY_DISK_FULL,
                f"spool {self.root} has {free} bytes free; {size} more would leave less than the"
                f" configured minimum of {self.min_free_bytes}",
            )

    def accept_bytes(self, data: bytes, ds: Dataset, *, source: str) -> Accepted:
        """A Part 10 file's bytes (with file meta) and its parsed dataset, from the SCP or a converter."""
        sha = hashlib.sha256(data).hexdigest()
        sop_uid = str(ds.SOPInstanceUID)
        same = self.queue.find_same(sop_uid, sha)
        if same is not None and (same.state == DONE or Path(same.received_path).exists()):
            # A modality sending the same instance again: already safe here or at the platform.
            return Accepted(same.id, Path(same.received_path), repeated=True)
        self._check_space(len(data))
        path = self.root / RECEIVED / f"{uuid.uuid4().hex}.dcm"
        try:
            write_durably(path, data, self.root / TMP, sync_dir=False)  # the group commit syncs received/
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise VetpacsError(Errors.GATEWAY_DISK_FULL, f"spool {self.root}: {exc.strerror}") from None
            raise VetpacsError(Errors.STORAGE_FAILED, f"spool {self.root}: {exc}") from None
        try:
            entry_id = self.group_commit.add(
                {
                    "sop_instance_uid": sop_uid,
                    "study_instance_uid": str(ds.StudyInstanceUID),
                    "series_instance_uid": str(ds.get("SeriesInstanceUID") or ""),
                    "sop_class_uid": str(ds.get("SOPClassUID") or ""),
                    "patient_id": str(ds.get("PatientID") or ""),
                    "study_date": str(ds.get("StudyDate") or ""),
                    "study_description": str(ds.get("StudyDescription") or ""),
                    "modality": str(ds.get("Modality") or ""),
                    "received_path": path,
                    "received_sha256": sha,
                    "received_size": len(data),
                    "source": source,
                }
            )
        except BaseException:
            path.unlink(missing_ok=True)  # not acknowledged, not queued: leave nothing behind
            raise
        return Accepted(entry_id, path)

    def accept_dataset(self, ds: Dataset, *, source: str) -> Accepted:
        """A dataset built here (watch folders, `convert`): written as a Part 10 file, then accepted."""
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return self.accept_bytes(buf.getvalue(), ds, source=source)

    def ready_path(self, entry_id: int) -> Path:
        return self.root / READY / f"{entry_id}.dcm"

    def discard(self, *paths: str | Path | None) -> None:
        """After the platform confirmed the SHA-256: the spool copies go (R-6.1.4)."""
        for p in paths:
            if p:
                Path(p).unlink(missing_ok=True)
