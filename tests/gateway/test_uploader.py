"""The uploader's pieces: the bandwidth cap and reading the platform's confirmation."""

from __future__ import annotations

import pytest

from vetpacs.gateway.uploader import TokenBucket, _Body, parse_ingest_header


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


@pytest.mark.requirement("R-7.2.4a-e")
def test_the_cap_holds_bytes_per_second_to_the_configured_rate():
    clock = FakeClock()
    bucket = TokenBucket(100_000, burst_bytes=10_000, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        bucket.take(10_000)  # 1 MB in all
    # The first burst is free; the other 990 KB take 9.9 s at 100 KB/s.
    assert clock.now == pytest.approx(9.9, rel=0.01)


def test_a_request_larger_than_the_burst_is_paid_in_parts():
    clock = FakeClock()
    bucket = TokenBucket(1000, burst_bytes=100, clock=clock, sleep=clock.sleep)
    bucket.take(1100)
    assert clock.now == pytest.approx(1.0, rel=0.01)


def test_no_cap_never_waits():
    clock = FakeClock()
    TokenBucket(0, clock=clock, sleep=clock.sleep).take(10**9)
    assert clock.slept == 0


def test_a_chunk_body_is_read_in_small_paid_pieces():
    clock = FakeClock()
    bucket = TokenBucket(16 * 1024, burst_bytes=16 * 1024, clock=clock, sleep=clock.sleep)
    body = _Body(b"x" * 64 * 1024, bucket)
    assert len(body) == 64 * 1024
    pieces = []
    while piece := body.read(8192 * 4):
        pieces.append(piece)
    assert b"".join(pieces) == b"x" * 64 * 1024
    assert body.tell() == 64 * 1024
    assert clock.now == pytest.approx(3.0, rel=0.01)


def test_stored_confirmation_is_read_with_its_sha256():
    c = parse_ingest_header("stored; sop-instance-uid=1.2.3; sha256=ABCDEF")
    assert (c.status, c.sha256) == ("stored", "abcdef")


def test_refusal_is_read_with_its_reason_and_detail():
    c = parse_ingest_header('refused; reason=checksum_mismatch; detail="declared SHA-256 x but y"')
    assert c.status == "refused"
    assert c.reason == "checksum_mismatch declared SHA-256 x but y"


@pytest.mark.requirement("R-7.2.4a-e")
def test_uploads_wait_as_long_as_the_platforms_retry_after_says_and_all_arrive(tmp_path):
    import json
    import time

    from tests.builders import dicom as build
    from tests.interop.conftest import live_platform
    from vetpacs.gateway.queue import Queue
    from vetpacs.gateway.spool import Spool
    from vetpacs.gateway.uploader import RATE_LIMITED, UploaderSettings, UploadService

    # A platform process of its own (four uploads at once need a server that serves them at once),
    # allowing this gateway a burst of 2 requests and then one a second.
    limited_platform = live_platform(
        tmp_path / "platform", VETPACS_DEVICE_RATE_PER_S="1", VETPACS_DEVICE_RATE_BURST="2"
    )
    with limited_platform as (server, _):
        queue = Queue(tmp_path / "spool" / "queue.sqlite3")
        spool = Spool(tmp_path / "spool", queue, min_free_bytes=0)
        datasets = build.study(6, owner=None)
        for ds in datasets:
            spool.accept_dataset(ds, source="test")
        service = UploadService(
            queue,
            spool,
            UploaderSettings(
                platform_url=server.url,
                token=server.token,
                parallel_uploads=4,
                compress=False,
                retry_base_s=0.1,
                retry_cap_s=0.2,  # alone, the back-off would knock again after 0.1-0.2 s
            ),
            recipient=None,
        )
        start = time.monotonic()
        service.start()
        try:
            deadline = start + 60
            while time.monotonic() < deadline and queue.counts()["done"] < 6:
                time.sleep(0.1)
        finally:
            service.shutdown()
        done, log = queue.counts()["done"], server.log_tail()
    assert done == 6, log
    # Six single-request uploads at a burst of 2 and 1/s take about 4 s, however many workers knock.
    assert time.monotonic() - start >= 3.5
    limited = 0
    for entry in queue.entries():
        steps = json.loads(entry.steps)
        for step, after in zip(steps, steps[1:], strict=False):
            if step["step"] == "rate_limited":
                limited += 1
                assert step["detail"].startswith(RATE_LIMITED)
                # Nothing more happened to the entry before the platform's Retry-After (1 s) had passed.
                assert after["at"] - step["at"] >= 0.95, (step, after)
    assert limited >= 1 and service.hold_off.times_held >= limited
    # Each 429 held back every worker (about two refusals a second were seen); four workers knocking
    # on their own would be refused about four times a second.
    assert service.hold_off.times_held <= 3 * (time.monotonic() - start) + 4
    queue.close()


def test_retry_after_is_read_as_seconds_or_a_date_and_bounded():
    import email.utils
    import time

    import requests

    from vetpacs.gateway.policing import DEFAULT_RETRY_AFTER_S, MAX_RETRY_AFTER_S, retry_after_s

    def answer(status: int, retry_after: str | None = None) -> requests.Response:
        resp = requests.Response()
        resp.status_code = status
        if retry_after is not None:
            resp.headers["Retry-After"] = retry_after
        return resp

    assert retry_after_s(answer(429, "3")) == 3
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_s(answer(429, in_ten)) <= 10
    assert retry_after_s(answer(429)) == DEFAULT_RETRY_AFTER_S
    assert retry_after_s(answer(429, "86400")) == MAX_RETRY_AFTER_S
    assert retry_after_s(answer(503)) is None and retry_after_s(answer(200, "3")) is None
