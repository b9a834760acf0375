"""The gateway's local status page: the queue by study, in Chinese and English, with safe buttons."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from vetpacs.gateway.queue import DONE, FAILED, PENDING, STOPPED, UPLOADING, Queue
from vetpacs.gateway.run import apply_action
from vetpacs.gateway.spool import Spool
from vetpacs.gateway.status import StatusServer, render_table, snapshot

SHOTS = Path(os.environ.get("VETPACS_SCREENSHOT_DIR", "/tmp/vetpacs-screenshots"))


def _fill(queue: Queue) -> tuple[str, str]:
    """Two studies: one half uploaded with a failure, one stopped."""
    chest, abdomen = "1.2.826.0.1.3680043.10.1.1", "1.2.826.0.1.3680043.10.1.2"
    for i, state in enumerate([DONE, DONE, UPLOADING, FAILED, PENDING]):
        entry_id = queue.add(
            sop_instance_uid=f"{chest}.{i}",
            study_instance_uid=chest,
            received_path=f"/spool/{i}.dcm",
            received_sha256="0" * 64,
            received_size=250_000,
            source="dicom:DR_ROOM1",
            patient_id="PET-001",
            study_date="20261204",
            study_description="胸部正侧位 Thorax",
            modality="DX",
        )
        fields = {"upload_size": 90_000, "bytes_sent": 90_000 if state == DONE else 30_000}
        if state == DONE:
            fields["done_at"] = time.time()
        if state == FAILED:
            fields.update(
                reason="上传失败 / upload failed: the platform cannot be reached (connection failed)"
            )
            fields["next_attempt_at"] = time.time() + 30
        queue.update(entry_id, state=state, **fields)
    for i in range(3):
        entry_id = queue.add(
            sop_instance_uid=f"{abdomen}.{i}",
            study_instance_uid=abdomen,
            received_path=f"/spool/a{i}.dcm",
            received_sha256="1" * 64,
            received_size=500_000,
            source="dicom:US_ROOM2",
            patient_id="PET-002",
            study_date="20261204",
            study_description="腹部超声 Abdomen",
            modality="US",
        )
        queue.update(entry_id, state=STOPPED)
    return chest, abdomen


@pytest.fixture
def page_server(tmp_path):
    queue = Queue(tmp_path / "spool" / "queue.sqlite3")
    spool = Spool(tmp_path / "spool", queue)
    studies = _fill(queue)

    def act(action, study):
        return apply_action(queue, action, study=study)

    server = StatusServer("127.0.0.1", 0, lambda: snapshot(queue, spool), act)
    server.start()
    server.queue = queue
    server.studies = studies
    yield server
    server.stop()
    queue.close()


@pytest.mark.requirement("R-6.1.4")
def test_page_shows_studies_progress_and_the_failure_in_both_languages(page_server):
    resp = requests.get(page_server.url + "/", timeout=10)
    assert resp.status_code == 200
    html = resp.text
    assert "上传队列" in html and "Gateway upload queue" in html
    assert "胸部正侧位 Thorax" in html
    assert "2 / 5" in html
    assert "上传失败 / Upload failed" in html and "connection failed" in html
    assert "停止上传" in html and "继续上传" in html and "立即重试" in html


def test_status_json_counts_by_state(page_server):
    data = requests.get(page_server.url + "/status.json", timeout=10).json()
    assert data["counts"][DONE] == 2
    assert data["counts"][STOPPED] == 3
    assert data["failures"] == 1
    assert data["queue_depth"] == 6


def test_a_button_without_the_page_token_is_refused(page_server):
    chest, _ = page_server.studies
    resp = requests.post(page_server.url + "/actions", data={"action": "stop", "study": chest}, timeout=10)
    assert resp.status_code == 403
    assert page_server.queue.counts()[STOPPED] == 3


def test_a_button_from_another_origin_is_refused(page_server):
    chest, _ = page_server.studies
    resp = requests.post(
        page_server.url + "/actions",
        data={"action": "stop", "study": chest, "token": page_server.token},
        headers={"Origin": "http://evil.example"},
        timeout=10,
    )
    assert resp.status_code == 403


@pytest.mark.requirement("R-6.1.4")
def test_buttons_stop_resume_and_retry(page_server):
    chest, abdomen = page_server.studies
    post = {"token": page_server.token}
    resp = requests.post(
        page_server.url + "/actions",
        data={**post, "action": "resume", "study": abdomen},
        timeout=10,
        allow_redirects=False,
    )
    assert resp.status_code == 303
    assert page_server.queue.counts()[STOPPED] == 0
    requests.post(page_server.url + "/actions", data={**post, "action": "retry", "study": chest}, timeout=10)
    assert page_server.queue.counts()[FAILED] == 0
    requests.post(page_server.url + "/actions", data={**post, "action": "stop", "study": ""}, timeout=10)
    assert page_server.queue.counts()[STOPPED] == 6


def test_cli_table_lists_each_study(page_server):
    from vetpacs.gateway.spool import Spool

    snap = snapshot(page_server.queue, Spool(page_server.queue.path.parent, page_server.queue))
    table = render_table(snap)
    chest, abdomen = page_server.studies
    assert chest in table and abdomen in table
    assert "上传失败 / upload failed" in table


@pytest.mark.browser
@pytest.mark.parametrize(("name", "viewport"), [("desktop", (1440, 900)), ("phone", (390, 844))])
def test_page_in_a_real_browser_with_working_buttons(page_server, browser, name, viewport):
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN")
        page.goto(page_server.url + "/")
        assert page.locator("h1").inner_text() == "影像网关 · 上传队列"
        page.screenshot(path=str(SHOTS / f"gateway-status-{name}.png"), full_page=True)
        # The row of the stopped study offers 继续上传; pressing it resumes that study.
        page.locator("tr", has_text="腹部超声").get_by_role("button", name="继续上传").click()
        page.wait_for_load_state()
        assert page_server.queue.counts()[STOPPED] == 0
        assert page.locator("tr", has_text="腹部超声").get_by_role("button", name="继续上传").count() == 0
    finally:
        page.close()
