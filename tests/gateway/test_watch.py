"""Watched folders: a complete file is handed over once, then moved aside; a bad one goes to failed/."""

from __future__ import annotations

import time

from vetpacs.gateway.watch import FolderWatcher


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_file_is_processed_only_after_it_stops_growing(tmp_path):
    seen, clock = [], Clock()
    watcher = FolderWatcher(tmp_path, seen.append, settle_s=2, clock=clock)
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 10)
    assert watcher.scan_once() == 0
    clock.now = 1.0
    with open(f, "ab") as out:
        out.write(b"more")  # still being copied
    assert watcher.scan_once() == 0
    clock.now = 2.5
    assert watcher.scan_once() == 0  # changed 1.5 s ago
    clock.now = 3.6
    assert watcher.scan_once() == 1
    assert seen == [f] and not f.exists()
    assert list((tmp_path / "processed").rglob("a.png"))


def test_sidecar_moves_with_its_file_and_is_not_handed_over(tmp_path):
    seen, clock = [], Clock()
    watcher = FolderWatcher(tmp_path, seen.append, settle_s=1, clock=clock)
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "a.jpg.json").write_text("{}")
    watcher.scan_once()
    clock.now = 2
    watcher.scan_once()
    assert [p.name for p in seen] == ["a.jpg"]
    assert sorted(p.name for p in (tmp_path / "processed").rglob("*"))[-2:] == ["a.jpg", "a.jpg.json"]


def test_failing_file_goes_to_failed_with_its_reason(tmp_path):
    clock = Clock()

    def boom(path):
        raise ValueError("patient_id is required")

    watcher = FolderWatcher(tmp_path, boom, settle_s=1, clock=clock)
    (tmp_path / "b.pdf").write_bytes(b"%PDF")
    watcher.scan_once()
    clock.now = 2
    watcher.scan_once()
    reason = (tmp_path / "failed" / "b.pdf.reason.txt").read_text(encoding="utf-8")
    assert "patient_id is required" in reason and "处理失败" in reason
    clock.now = 4
    assert watcher.scan_once() == 0  # never retried in a loop


def test_temporary_names_are_ignored(tmp_path):
    seen, clock = [], Clock()
    watcher = FolderWatcher(tmp_path, seen.append, settle_s=0, clock=clock)
    (tmp_path / "c.png.part").write_bytes(b"x")
    (tmp_path / "~$d.csv").write_bytes(b"x")
    watcher.scan_once()
    clock.now = 1
    watcher.scan_once()
    assert seen == []


def test_running_watcher_picks_up_a_copied_file(tmp_path):
    seen = []
    watcher = FolderWatcher(tmp_path, seen.append, settle_s=0.2)
    watcher.start()
    try:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "e.png").write_bytes(b"png")
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert [p.name for p in seen] == ["e.png"]
    assert (tmp_path / "processed").exists()
