"""Traffic policing of the device endpoints (R-7.2.4a-e): a token bucket per gateway, in process or Redis."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest
from django.test import Client

from tests.apps.appkeys.test_signed_requests import call as signed_call
from vetpacs.apps.appkeys import services as appkeys
from vetpacs.apps.devices import policing, services
from vetpacs.apps.devices.policing import MemoryBuckets, RedisBuckets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server (Debian package) on a free port, with nothing saved to disk."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server (Debian package) not installed")
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_buckets():
    policing._current = None
    yield
    policing._current = None


def _beat(client: Client):
    return client.post("/api/v1/devices/heartbeat", data=json.dumps({}), content_type="application/json")


@pytest.mark.requirement("R-7.2.4a-e")
def test_a_bucket_gives_its_burst_then_one_request_per_refill_and_says_how_long_to_wait():
    now = [100.0]
    buckets = MemoryBuckets(2.0, 3, clock=lambda: now[0])
    assert [buckets.take("gw-a").allowed for _ in range(3)] == [True, True, True]
    refused = buckets.take("gw-a")
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert buckets.take("gw-b").allowed  # another gateway has its own bucket
    now[0] += 0.5
    assert buckets.take("gw-a").allowed and not buckets.take("gw-a").allowed


@pytest.mark.requirement("R-7.2.4a-e")
def test_redis_buckets_are_shared_by_every_platform_process(redis_url):
    first, second = RedisBuckets(redis_url, 1.0, 3), RedisBuckets(redis_url, 1.0, 3)
    # Two platform processes, one gateway: the bucket is the same one.
    assert [first.take("gw-a").allowed, second.take("gw-a").allowed, first.take("gw-a").allowed] == [True] * 3
    refused = second.take("gw-a")
    assert not refused.allowed and 0 < refused.retry_after_s <= 1.0
    assert first.take("gw-b").allowed
    time.sleep(refused.retry_after_s + 0.05)
    assert first.take("gw-a").allowed


def test_redis_out_of_reach_lets_requests_through():
    buckets = RedisBuckets(f"redis://127.0.0.1:{_free_port()}/0", 1.0, 1)
    assert buckets.take("gw-a").allowed and buckets.take("gw-a").allowed


@pytest.mark.requirement("R-7.2.4a-e")
@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_gateway_over_its_rate_gets_429_with_retry_after_while_another_clinic_is_served(
    settings, other_clinic, gateway_client, store, request
):
    redis = request.getfixturevalue("redis_url") if store == "redis" else ""
    settings.VETPACS_DEVICE_RATE_LIMIT = {"requests_per_s": 0.25, "burst": 3, "redis_url": redis}
    actor = services.Actor(user_id=None, label="test")
    _, code = services.register_gateway(organisation_id=other_clinic.id, name="US room", actor=actor)
    other = Client(HTTP_AUTHORIZATION=f"Bearer {services.enrol(code=code, hostname='pc-2')['secret']}")

    assert [_beat(gateway_client).status_code for _ in range(3)] == [200, 200, 200]
    refused = _beat(gateway_client)
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/problem+json")
    assert refused.json()["type"] == "urn:vetpacs:error:device_rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 4
    # The flooding gateway's uploads are policed by the same bucket; the other clinic is untouched.
    assert gateway_client.post("/api/v1/uploads/").status_code == 429
    assert [_beat(other).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.requirement("R-7.2.4a-e")
def test_a_caller_signing_with_an_application_key_has_a_bucket_of_its_own(settings, clinic):
    """App-key callers are policed too: by key id and address, so a copied key id cannot starve the key."""
    settings.VETPACS_DEVICE_RATE_LIMIT = {"requests_per_s": 0.25, "burst": 2, "redis_url": ""}
    key, secret = appkeys.issue_key(organisation=clinic, name="gateway", scopes=["uploads.write"])

    def create_upload(address: str):
        return signed_call(
            key.key_id, secret, "POST", "/api/v1/uploads/", HTTP_TUS_RESUMABLE="1.0.0",
            HTTP_UPLOAD_LENGTH="10", REMOTE_ADDR=address,
        )  # fmt: skip

    assert [create_upload("10.1.0.5").status_code for _ in range(2)] == [201, 201]
    refused = create_upload("10.1.0.5")
    assert refused.status_code == 429
    assert refused.json()["type"] == "urn:vetpacs:error:device_rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # The same key id from another address (someone who read it in a log) fills a bucket of its own,
    # and without the secret it gets no further than the signature check.
    forged = signed_call(
        key.key_id, "not-the-secret", "POST", "/api/v1/uploads/", HTTP_TUS_RESUMABLE="1.0.0",
        HTTP_UPLOAD_LENGTH="10", REMOTE_ADDR="10.9.9.9",
    )  # fmt: skip
    assert forged.status_code == 401
    assert create_upload("10.2.0.7").status_code == 201


def test_policing_off_never_refuses(settings, gateway_client):
    settings.VETPACS_DEVICE_RATE_LIMIT = {"requests_per_s": 0, "burst": 1, "redis_url": ""}
    assert {_beat(gateway_client).status_code for _ in range(5)} == {200}
