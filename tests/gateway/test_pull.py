"""Query/retrieve from a real Orthanc acting as the clinic's PACS: what is not collected yet is pulled."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.builders import dicom as build
from tests.gateway.orthanc import ORTHANC_AET, free_port, needs_orthanc, run_orthanc
from vetpacs.gateway.config import load_config, write_default
from vetpacs.gateway.pull import Puller, PullError, PullSource, PullState, date_range
from vetpacs.gateway.queue import Queue
from vetpacs.gateway.scp import start_scp
from vetpacs.gateway.spool import Spool

GATEWAY_AET = "VETPACS_GW"
GATEWAY = str(Path(sys.executable).parent / "vetpacs-gateway")
TODAY = dt.date.today().strftime("%Y%m%d")

# pynetdicom leaves the socket of a closed association for the garbage collector (a ResourceWarning).
pytestmark = [needs_orthanc, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def _study(n: int, *, modality: str = "DX", date: str = TODAY):
    return build.study(n, modality=modality, StudyDate=date)


def _put(orthanc, datasets) -> None:
    for ds in datasets:
        orthanc.store(build.to_bytes(ds))


@pytest.fixture
def receiver(tmp_path):
    """The gateway's spool and queue behind its SCP, as `run` has them."""
    queue = Queue(tmp_path / "spool" / "queue.sqlite3")
    spool = Spool(tmp_path / "spool", queue)
    port = free_port()
    scp = start_scp(spool, ae_title=GATEWAY_AET, host="127.0.0.1", port=port)
    yield spool, queue, port
    scp.shutdown()
    queue.close()


@pytest.fixture
def pacs(tmp_path, receiver):
    _spool, _queue, port = receiver
    orthanc = run_orthanc(tmp_path / "orthanc", modalities={"gateway": [GATEWAY_AET, "127.0.0.1", port]})
    yield orthanc
    orthanc.stop()


def _puller(orthanc, spool, queue, state_path: Path, **kwargs) -> Puller:
    source = PullSource(ORTHANC_AET, "127.0.0.1", orthanc.dicom_port, calling_ae_title=GATEWAY_AET, **kwargs)
    return Puller(source, spool, queue, PullState(state_path))


def test_study_date_window_counts_today_and_the_days_before():
    assert date_range(7, dt.date(2026, 12, 4)) == "20261128-20261204"
    assert date_range(1, dt.date(2026, 12, 4)) == "20261204-20261204"
    assert date_range(0) == ""


@pytest.mark.requirement("R-6.1.2")
@pytest.mark.parametrize("retrieve", ["move", "get"])
def test_pull_collects_each_study_once_and_a_new_study_next_time(tmp_path, receiver, pacs, retrieve):
    spool, queue, _port = receiver
    first, second = _study(3), _study(2, modality="CR")
    old = _study(1, date="20200101")  # outside the window of 7 days
    ultrasound = _study(1, modality="US")  # a modality not asked for
    _put(pacs, first + second + old + ultrasound)
    puller = _puller(
        pacs, spool, queue, tmp_path / "pull.sqlite3", days=7, modalities=("DX", "CR"), retrieve=retrieve
    )

    result = puller.pull_once()
    assert sorted(result.pulled) == sorted([first[0].StudyInstanceUID, second[0].StudyInstanceUID])
    assert result.instances == 5 and not result.failed
    entries = queue.entries()
    assert sorted(e.sop_instance_uid for e in entries) == sorted(d.SOPInstanceUID for d in first + second)
    # Into the normal queue, through the spool: every file on disk, waiting for the uploader.
    assert all(e.state == "pending" and Path(e.received_path).exists() for e in entries)
    expected_source = f"dicom:{ORTHANC_AET}" if retrieve == "move" else f"pull:{ORTHANC_AET}"
    assert {e.source for e in entries} == {expected_source}

    again = puller.pull_once()
    assert again.pulled == [] and again.already == 2 and again.instances == 0
    assert len(queue.entries()) == 5

    third = _study(2)
    _put(pacs, third)
    # A new puller (a new run of the gateway) remembers what the last one pulled.
    later = _puller(
        pacs, spool, queue, tmp_path / "pull.sqlite3", days=7, modalities=("DX", "CR"), retrieve=retrieve
    )
    result = later.pull_once()
    assert result.pulled == [third[0].StudyInstanceUID] and result.already == 2
    assert len(queue.entries()) == 7


@pytest.mark.requirement("R-6.1.2")
def test_a_study_that_grew_on_the_pacs_is_pulled_again_without_queueing_what_was_there(
    tmp_path, receiver, pacs
):
    spool, queue, _port = receiver
    datasets = _study(3)
    _put(pacs, datasets[:2])
    puller = _puller(pacs, spool, queue, tmp_path / "pull.sqlite3")
    assert puller.pull_once().instances == 2
    _put(pacs, datasets[2:])
    result = puller.pull_once()
    assert result.pulled == [datasets[0].StudyInstanceUID]
    # The PACS sent the whole study again; the spool queued only the instance it did not hold.
    assert sorted(e.sop_instance_uid for e in queue.entries()) == sorted(d.SOPInstanceUID for d in datasets)


def test_a_study_the_modality_already_sent_to_the_gateway_is_not_retrieved(tmp_path, receiver, pacs):
    spool, queue, _port = receiver
    datasets = _study(2)
    _put(pacs, datasets)
    for ds in datasets:
        spool.accept_bytes(build.to_bytes(ds), ds, source="dicom:DR_ROOM")
    result = _puller(pacs, spool, queue, tmp_path / "pull.sqlite3").pull_once()
    assert result.pulled == [] and result.already == 1
    assert {e.source for e in queue.entries()} == {"dicom:DR_ROOM"}


def test_a_pacs_that_does_not_answer_is_a_clear_error(tmp_path, receiver):
    spool, queue, _port = receiver
    source = PullSource(ORTHANC_AET, "127.0.0.1", free_port(), calling_ae_title=GATEWAY_AET)
    puller = Puller(source, spool, queue, PullState(tmp_path / "pull.sqlite3"))
    with pytest.raises(PullError, match="refused the association"):
        puller.pull_once()


@pytest.mark.requirement("R-6.1.2")
def test_pull_command_receives_on_its_own_scp_when_no_gateway_runs(tmp_path):
    dicom_port = free_port()
    orthanc = run_orthanc(
        tmp_path / "orthanc", modalities={"gateway": [GATEWAY_AET, "127.0.0.1", dicom_port]}
    )
    try:
        datasets = _study(2)
        _put(orthanc, datasets)
        config_dir = tmp_path / "gw"
        write_default(
            config_dir,
            dicom_host="127.0.0.1",
            dicom_port=dicom_port,
            min_free_bytes=0,
            pacs_host="127.0.0.1",
            pacs_port=orthanc.dicom_port,
            pacs_ae_title=ORTHANC_AET,
        )

        def pull() -> subprocess.CompletedProcess:
            return subprocess.run(
                [GATEWAY, "pull", "--config-dir", str(config_dir)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        done = pull()
        assert done.returncode == 0, done.stderr
        assert "1 pulled (2 instances)" in done.stdout
        done = pull()
        assert done.returncode == 0 and "1 already collected, 0 pulled" in done.stdout
        queue = Queue(load_config(config_dir).queue_path)
        assert sorted(e.sop_instance_uid for e in queue.entries()) == sorted(
            d.SOPInstanceUID for d in datasets
        )
        queue.close()
    finally:
        orthanc.stop()


@pytest.mark.requirement("R-6.1.2")
def test_run_pulls_on_its_schedule(tmp_path):
    from tests.gateway.test_run import _certificate
    from vetpacs.gateway.credentials import Credentials
    from vetpacs.gateway.run import Gateway

    dicom_port = free_port()
    orthanc = run_orthanc(
        tmp_path / "orthanc", modalities={"gateway": [GATEWAY_AET, "127.0.0.1", dicom_port]}
    )
    config_dir = tmp_path / "gw"
    write_default(
        config_dir,
        dicom_host="127.0.0.1",
        dicom_port=dicom_port,
        status_port=0,
        min_free_bytes=0,
        pacs_host="127.0.0.1",
        pacs_port=orthanc.dicom_port,
        pacs_ae_title=ORTHANC_AET,
        allowed_calling_aes=["DR_ROOM"],  # the PACS is let in for its C-MOVE all the same
        pull_interval_s=0.5,
    )
    # No platform: the uploader only fails and retries, which this test does not look at.
    gateway = Gateway(load_config(config_dir), Credentials("http://127.0.0.1:9", "k", "vp_x", _certificate()))
    gateway.start(heartbeat=False)
    try:
        datasets = _study(2)
        _put(orthanc, datasets)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and gateway.queue.count_study(datasets[0].StudyInstanceUID) < 2:
            time.sleep(0.2)
        assert gateway.queue.count_study(datasets[0].StudyInstanceUID) == 2
        assert gateway.status_fn()["pull"]["studies_pulled"] == 1
        # The clinic's staff see the pull on the gateway's local status page, and its JSON says the same.
        page = requests.get(gateway.status_server.url + "/", timeout=10).text
        assert "从诊所 PACS 拉取 / Pull from the clinic PACS" in page
        assert "Studies pulled: 1" in page
        assert "1 pulled (2 instances)" in page
        pull = requests.get(gateway.status_server.url + "/status.json", timeout=10).json()["pull"]
        assert pull["studies_pulled"] == 1 and pull["last_at"] and not pull["last_error"]
    finally:
        gateway.shutdown()
        orthanc.stop()
