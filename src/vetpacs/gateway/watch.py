"""Watched folders: hand each file to a callback once it is complete, then move it aside (R-6.1.1c).

A file is complete when its size and modification time have not changed for `settle_s` seconds and
it can be opened for reading: a modality or a user copying into the share writes for a while, and a
half-copied file must never be converted. watchdog's events only wake the scanner; the scanner also
runs every `settle_s`, so a missed event (network shares drop them) delays a file, never loses it.

After the callback returns the file goes to `processed/<date>/`; if it raises, to `failed/` with a
`<name>.reason.txt` saying why (in Chinese and English), so nothing is processed twice or lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)

PROCESSED_DIR = "processed"
FAILED_DIR = "failed"
# Names a copying program uses while it writes (Windows Explorer, browsers, rsync, Office).
_TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".filepart")
SIDECAR_SUFFIX = ".json"


def _is_temporary(path: Path) -> bool:
    name = path.name
    return name.startswith((".", "~$")) or name.lower().endswith(_TEMPORARY_SUFFIXES)


class _Wake(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._event.set()


class FolderWatcher:
    """Watch `folder` (and its subfolders) and call `on_file(path)` once per complete file.

    With `sidecars=True` (image folders) a `.json` file is the sidecar of the file with the same
    name and moves with it instead of being handed over itself; a drop folder of records passes
    `sidecars=False` to receive JSON files too.
    """

    def __init__(
        self,
        folder: Path,
        on_file: Callable[[Path], object],
        *,
        settle_s: float = 2.0,
        sidecars: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder)
        self.on_file = on_file
        self.settle_s = settle_s
        self.sidecars = sidecars
        self._clock = clock
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, stable since)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]

    @property
    def processed_dir(self) -> Path:
        return self.folder / PROCESSED_DIR

    @property
    def failed_dir(self) -> Path:
        return self.folder / FAILED_DIR

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Wake(self._wake), str(self.folder), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name=f"watch:{self.folder}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:  # the watcher must keep serving whatever one file does
                log.exception("watch folder scan failed: %s", self.folder)
            self._wake.wait(timeout=max(0.1, self.settle_s / 2))
            self._wake.clear()

    def _candidates(self) -> list[Path]:
        out = []
        skip = (self.processed_dir, self.failed_dir)
        for root, dirs, files in os.walk(self.folder):
            root_path = Path(root)
            dirs[:] = [d for d in dirs if root_path / d not in skip and not d.startswith(".")]
            for name in files:
                path = root_path / name
                if _is_temporary(path):
                    continue
                if self.sidecars and name.lower().endswith(SIDECAR_SUFFIX) and self._sidecar_owner(path):
                    continue
                out.append(path)
        return sorted(out)

    def _sidecar_owner(self, path: Path) -> bool:
        """True when `path` is a sidecar: another file in its folder has its name without `.json`
        (`a.jpg.json` for `a.jpg`), or shares its stem (`a.json` for `a.jpg`)."""
        stem = path.name[: -len(SIDECAR_SUFFIX)]
        if (path.parent / stem).exists():
            return True
        return any(p != path and p.stem == stem for p in path.parent.iterdir() if p.is_file())

    def scan_once(self) -> int:
        """Process every file that has been stable for settle_s; returns how many were handed over."""
        now = self._clock()
        handed = 0
        current = set()
        for path in self._candidates():
            current.add(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(path)
            if seen is None or seen[:2] != key:
                self._seen[path] = (*key, now)
                continue
            if now - seen[2] < self.settle_s or not _readable(path):
                continue
            self._process(path)
            self._seen.pop(path, None)
            handed += 1
        for gone in set(self._seen) - current:
            self._seen.pop(gone, None)
        return handed

    def _process(self, path: Path) -> None:
        sidecar = _sidecar_of(path) if self.sidecars else None
        try:
            self.on_file(path)
        except Exception as exc:  # any failure: the file goes aside with its reason
            log.warning("watch folder: %s failed: %s", path, exc)
            target = _move(path, self.failed_dir, self.folder)
            if sidecar is not None:
                _move(sidecar, self.failed_dir, self.folder)
            reason = f"处理失败 Processing failed: {type(exc).__name__}: {exc}\n"
            target.with_name(target.name + ".reason.txt").write_text(reason, encoding="utf-8")
            return
        day = self.processed_dir / dt.date.today().strftime("%Y%m%d")
        _move(path, day, self.folder)
        if sidecar is not None:
            _move(sidecar, day, self.folder)


def _sidecar_of(path: Path) -> Path | None:
    for candidate in (path.with_name(path.name + SIDECAR_SUFFIX), path.with_suffix(SIDECAR_SUFFIX)):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _readable(path: Path) -> bool:
    """A file another program still holds exclusively (Windows shares) cannot be opened yet."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return False
    return True


def _move(path: Path, target_dir: Path, base: Path) -> Path:
    """Move `path` under `target_dir`, keeping its place relative to `base`, never overwriting."""
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = Path(path.name)
    target = target_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        target = target.with_name(f"{relative.stem}.{n}{relative.suffix}")
        n += 1
    shutil.move(str(path), str(target))
    return target
