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
