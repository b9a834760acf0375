"""Report return into a real Orthanc acting as the clinic's PACS, checked through Orthanc's REST API."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.builders.dicom import image
from tests.gateway.orthanc import free_port, needs_orthanc, start_orthanc
from vetpacs.apps.devices.services import Actor
from vetpacs.apps.orgs.services import issue_token
from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.report_return import PacsTarget, ReportReturnError, send_report

pytestmark = needs_orthanc
ACTOR = Actor(user_id=None, label="test")


@pytest.fixture
def orthanc(tmp_path):
    http_port, dicom_port = free_port(), free_port()
    proc = start_orthanc(tmp_path / "orthanc", http_port, dicom_port)
    yield http_port, dicom_port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.requirement("R-6.2.3d")
def test_report_is_fetched_by_wado_rs_and_stored_in_the_clinics_pacs(
    transactional_db, live_server, clinic, ingest, orthanc
):
    http_port, dicom_port = orthanc
    ds = image()
    ingest(ds)
    url = (
        f"{live_server.url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    creds = Credentials(live_server.url, "gw_test", issue_token(organisation=clinic, name="gw"), b"")
    result = send_report(url, creds, PacsTarget("CLINICPACS", "127.0.0.1", dicom_port), retry_base_s=0.2)
    assert ds.SOPInstanceUID in result
    found = requests.post(
        f"http://127.0.0.1:{http_port}/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": ds.SOPInstanceUID}},
        timeout=10,
    ).json()
    assert len(found) == 1


# pynetdicom leaves the socket of a refused connection for the garbage collector (a ResourceWarning).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_report_return_retries_until_the_pacs_is_up(transactional_db, live_server, clinic, ingest, tmp_path):
    ds = image()
    ingest(ds)
    url = (
        f"{live_server.url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    creds = Credentials(live_server.url, "gw_test", issue_token(organisation=clinic, name="gw"), b"")
    http_port, dicom_port = free_port(), free_port()
    outcome: dict[str, str] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=send_report(
                url, creds, PacsTarget("CLINICPACS", "127.0.0.1", dicom_port), retry_base_s=0.3
            )
        )
    )
    worker.start()
    time.sleep(1.0)  # several refused attempts while the PACS is down
    assert "result" not in outcome
    proc = start_orthanc(tmp_path / "orthanc", http_port, dicom_port)
    try:
        worker.join(60)
        assert "attempt" in outcome["result"] and "attempt 1," not in outcome["result"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_url_of_another_platform_is_refused(tmp_path):
    creds = Credentials("http://platform.example", "gw", "vp_x", b"")
    stop = threading.Event()
    stop.set()
    with pytest.raises(ReportReturnError, match="not on this gateway's platform"):
        send_report("http://evil.example/x", creds, PacsTarget("P", "127.0.0.1", 1), stop=stop)


@pytest.mark.requirement("R-6.2.3d")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pynetdicom, as above
def test_queued_report_return_survives_a_restart_and_completes_when_the_pacs_is_up(
    transactional_db, live_server, clinic, ingest, tmp_path
):
    from vetpacs.gateway.report_return import ReportReturner

    ds = image()
    ingest(ds)
    url = (
        f"{live_server.url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    creds = Credentials(live_server.url, "gw_test", issue_token(organisation=clinic, name="gw"), b"")
    http_port, dicom_port = free_port(), free_port()
    pacs = PacsTarget("CLINICPACS", "127.0.0.1", dicom_port)
    now = [1000.0]
    first = ReportReturner(creds, pacs, tmp_path / "state", clock=lambda: now[0])
    assert "queued" in first.on_command({"id": 41, "kind": "send_report", "args": {"url": url}})
    assert first.run_due() == 0  # the PACS is down
    assert first.status()["report_returns_pending"] == 1
    assert "refused" in first.status()["report_return_error"]
    # the gateway restarts; the PACS comes up; the return is retried once its back-off has passed
    proc = start_orthanc(tmp_path / "orthanc", http_port, dicom_port)
    try:
        second = ReportReturner(creds, pacs, tmp_path / "state", clock=lambda: now[0])
        assert second.run_due() == 0  # not due yet
        now[0] += 5
        assert second.run_due() == 1
        assert second.status() == {"report_returns_pending": 0, "report_return_error": ""}
        found = requests.post(
            f"http://127.0.0.1:{http_port}/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": ds.SOPInstanceUID}},
            timeout=10,
        ).json()
        assert len(found) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_send_report_command_for_another_host_is_refused_at_once(tmp_path):
    from vetpacs.gateway.report_return import ReportReturner

    creds = Credentials("http://platform.example", "gw", "vp_x", b"")
    returner = ReportReturner(creds, PacsTarget("P", "127.0.0.1", 1), tmp_path)
    with pytest.raises(ReportReturnError):
        returner.on_command({"id": 1, "kind": "send_report", "args": {"url": "http://evil.example/x"}})


@pytest.fixture
def running_gateway(live_server, clinic, orthanc, tmp_path, settings):
    """A gateway enrolled with the live platform, set up with Orthanc as the clinic's PACS, running."""
    from vetpacs.apps.devices import services as devices
    from vetpacs.gateway.config import load_config, write_default
    from vetpacs.gateway.enrol import enrol
    from vetpacs.gateway.run import Gateway

    settings.VETPACS_GATEWAY_HEARTBEAT_SECONDS = 1
    devices.reset_caches()
    _, code = devices.register_gateway(organisation_id=clinic.id, name="front desk", actor=ACTOR)
    config_dir = tmp_path / "gw"
    credentials = enrol(url=live_server.url, code=code, config_dir=config_dir)
    write_default(
        config_dir,
        dicom_host="127.0.0.1",
        dicom_port=free_port(),
        status_port=0,
        min_free_bytes=0,
        pacs_host="127.0.0.1",
        pacs_port=orthanc[1],
        pacs_ae_title="CLINICPACS",
    )
    gateway = Gateway(load_config(config_dir), credentials)
    gateway.start()
    yield gateway
    gateway.shutdown()
    devices.reset_caches()


@pytest.mark.requirement("R-6.2.3d")
@pytest.mark.usefixtures("transactional_db")
def test_the_platform_asks_the_running_gateway_and_the_report_arrives_in_the_clinics_pacs(
    live_server, clinic, ingest, orthanc, running_gateway
):
    """The whole way: the platform queues send_report, the running gateway's heartbeat takes it, the
    gateway fetches the instance with its enrolled credentials and C-STOREs it to the PACS it is set up
    with, and the platform records the command as done."""
    from vetpacs.apps.devices import services as devices
    from vetpacs.apps.devices.models import Command, Gateway

    ds = image()
    ingest(ds)
    _wait_for(lambda: Gateway.objects.get().last_seen_at is not None, "first beat from the gateway")
    url = (
        f"{live_server.url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    [command] = devices.send_report_back(organisation_id=clinic.id, wado_url=url, actor=ACTOR)

    def in_pacs() -> bool:
        return bool(
            requests.post(
                f"http://127.0.0.1:{orthanc[0]}/tools/find",
                json={"Level": "Instance", "Query": {"SOPInstanceUID": ds.SOPInstanceUID}},
                timeout=10,
            ).json()
        )

    _wait_for(in_pacs, "report in the clinic's PACS")
    # The platform hears that the gateway took the command ("queued for" the PACS) on the next beat.
    _wait_for(lambda: Command.objects.get(pk=command.pk).state == Command.State.DONE, "command done")
    assert "CLINICPACS" in Command.objects.get(pk=command.pk).result
    # The gateway marks the return done once the PACS has answered (a moment after Orthanc shows it).
    nothing_pending = {"report_returns_pending": 0, "report_return_error": ""}
    _wait_for(lambda: running_gateway.report_returner.status() == nothing_pending, "return marked done")


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {what} in {timeout} s")
