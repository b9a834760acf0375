"""The gateway's SCP: on disk and queued before Success; a failure status, never a false success."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from tests.builders import dicom as build
from vetpacs.core.errors import DimseStatus
from vetpacs.gateway import spool as spool_module
from vetpacs.gateway.queue import PENDING, Queue
from vetpacs.gateway.scp import start_scp
from vetpacs.gateway.spool import Spool


@pytest.fixture
def queue(tmp_path):
    q = Queue(tmp_path / "spool" / "queue.sqlite3")
    yield q
    q.close()


@pytest.fixture
def spool(tmp_path, queue):
    return Spool(tmp_path / "spool", queue)


@pytest.fixture
def scp(spool):
    seen = []

    def on_accepted(accepted):
        # What the SCP has when it is about to answer: the file is whole on disk and queued.
        assert accepted.path.exists()
        assert spool.queue.get(accepted.entry_id) is not None
        seen.append(accepted)

    server = start_scp(
        spool, ae_title="GW", host="127.0.0.1", port=0, allowed_calling_aes=(), on_accepted=on_accepted
    )
    server.accepted = seen
    yield server
    server.shutdown()


def _send(port, *datasets, syntaxes=None):
    ae = AE(ae_title="MODALITY")
    for ds in datasets:
        for ts in syntaxes or [str(ds.file_meta.TransferSyntaxUID)]:
            ae.add_requested_context(ds.SOPClassUID, ts)
    assoc = ae.associate("127.0.0.1", port, ae_title="GW")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds) for ds in datasets]
    finally:
        assoc.release()


@pytest.mark.requirement("R-6.1.1a")
def test_c_echo_answers_success(scp):
    ae = AE()
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", scp.server_address[1])
    assert assoc.send_c_echo().Status == 0
    assoc.release()


@pytest.mark.requirement("R-6.1.1a")
def test_stored_instance_is_spooled_and_queued_before_success(scp, queue):
    ds = build.image()
    [status] = _send(scp.server_address[1], ds)
    assert status.Status == DimseStatus.SUCCESS
    [entry] = queue.entries()
    assert entry.state == PENDING
    assert entry.sop_instance_uid == ds.SOPInstanceUID
    assert entry.source == "dicom:MODALITY"
    data = Path(entry.received_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.received_sha256
    assert len(scp.accepted) == 1


@pytest.mark.requirement("R-6.1.1b")
@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian], ids=str
)
def test_every_standard_uncompressed_syntax_is_accepted(scp, queue, syntax):
    ds = build.image(transfer_syntax=syntax)
    [status] = _send(scp.server_address[1], ds, syntaxes=[syntax])
    assert status.Status == 0
    assert queue.counts()[PENDING] == 1


def test_the_same_instance_sent_twice_is_queued_once(scp, queue):
    ds = build.image()
    _send(scp.server_address[1], ds)
    [status] = _send(scp.server_address[1], ds)
    assert status.Status == 0
    assert len(queue.entries()) == 1


def test_bad_dataset_gets_a_failure_status_and_nothing_is_queued(scp, queue, tmp_path):
    ds = build.image()
    ds.Rows = 4000  # the pixel data no longer fits the image attributes
    [status] = _send(scp.server_address[1], ds)
    assert status.Status == DimseStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert "inconsistent_pixel_data" in status.ErrorComment
    assert queue.entries() == []
    assert list((tmp_path / "spool" / "received").iterdir()) == []


def test_missing_uid_gets_cannot_understand(scp, queue):
    ds = build.image()
    del ds.StudyInstanceUID
    [status] = _send(scp.server_address[1], ds)
    assert status.Status == DimseStatus.CANNOT_UNDERSTAND
    assert queue.entries() == []


def test_spool_below_its_free_space_minimum_answers_out_of_resources(scp, spool, queue):
    spool.min_free_bytes = spool.free_bytes() * 2
    [status] = _send(scp.server_address[1], build.image())
    assert status.Status == DimseStatus.OUT_OF_RESOURCES
    assert "gateway_disk_full" in status.ErrorComment
    assert queue.entries() == []


def test_a_write_failing_with_enospc_answers_out_of_resources(scp, queue, monkeypatch, tmp_path):
    def full(path, data, tmp_dir, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module, "write_durably", full)
    [status] = _send(scp.server_address[1], build.image())
    assert status.Status == DimseStatus.OUT_OF_RESOURCES
    assert queue.entries() == []


def test_calling_ae_not_on_the_allow_list_is_rejected(spool):
    server = start_scp(spool, ae_title="GW", host="127.0.0.1", port=0, allowed_calling_aes=("DR1",))
    try:
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context("1.2.840.10008.1.1")
        assert ae.associate("127.0.0.1", server.server_address[1]).is_rejected
        ae = AE(ae_title="DR1")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", server.server_address[1])
        assert assoc.is_established
        assoc.release()
    finally:
        server.shutdown()


@pytest.mark.requirement("R-6.1.1b")
@pytest.mark.parametrize("modality", ["CR", "DX", "CT", "MR", "US", "OT"])
def test_every_modality_kind_is_accepted(scp, queue, modality):
    ds = build.image(modality=modality)
    [status] = _send(scp.server_address[1], ds)
    assert status.Status == 0
    [entry] = queue.entries()
    assert entry.sop_class_uid == build.SOP_CLASSES[modality]
    assert entry.modality == modality


@pytest.mark.requirement("R-6.1.1a")
def test_instances_arriving_together_share_a_commit_and_each_is_durable_before_its_answer(
    spool, queue, monkeypatch, tmp_path
):
    import sqlite3
    import subprocess
    import time

    real_fsync_dir = spool_module.fsync_dir
    fsyncs = []
    real_fsync = spool_module.os.fsync

    def slow_fsync_dir(path):
        time.sleep(0.02)  # a disk whose flush takes 20 ms, as a clinic PC's spinning disk does
        real_fsync_dir(path)

    def counting_fsync(fd):
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(spool_module, "fsync_dir", slow_fsync_dir)
    monkeypatch.setattr(spool_module.os, "fsync", counting_fsync)
    not_durable = []

    def on_accepted(accepted):
        # About to answer Success: the row is committed, as another connection (process) sees it.
        with sqlite3.connect(queue.path) as other:
            row = other.execute(
                "SELECT received_path FROM entries WHERE id=?", (accepted.entry_id,)
            ).fetchone()
        if row is None or not Path(row[0]).exists():
            not_durable.append(accepted.entry_id)

    server = start_scp(spool, ae_title="GW", host="127.0.0.1", port=0, on_accepted=on_accepted)
    senders, per_sender = 6, 8
    # Six modalities at once, each a DCMTK storescu process of its own (as in a clinic: the SCP is
    # the only thing in this process competing for the interpreter).
    folders = []
    for k in range(senders):
        folder = tmp_path / f"modality{k}"
        folder.mkdir()
        for ds in build.study(per_sender):
            build.write(ds, folder)
        folders.append(folder)
    try:
        port = str(server.server_address[1])
        procs = [
            subprocess.Popen(
                ["storescu", "-aet", f"DR{k}", "-aec", "GW", "+sd", "127.0.0.1", port, str(folder)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for k, folder in enumerate(folders)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        codes = [p.returncode for p in procs]
    finally:
        server.shutdown()
    assert codes == [0] * senders, errors
    n = senders * per_sender
    assert not_durable == []
    assert len(queue.entries()) == n
    group = spool.group_commit
    assert group.rows == n
    # Before: one directory fsync and one queue commit per instance. Now they are shared.
    assert group.commits <= n // 2, f"{group.commits} commits for {n} instances"
    assert group.dir_fsyncs == group.commits
    # Each file's own data is still fsynced, once; the directory once per group.
    assert len(fsyncs) == n + group.dir_fsyncs
