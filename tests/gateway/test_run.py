"""`run`'s wiring: the heartbeat's status and the platform's commands act on the queue."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from vetpacs.gateway.config import load_config, write_default
from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.queue import FAILED, PENDING, STOPPED
from vetpacs.gateway.run import Gateway


def _certificate() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test platform")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def gateway(tmp_path):
    write_default(tmp_path, min_free_bytes=0)
    creds = Credentials("http://127.0.0.1:9", "k", "vp_secret", _certificate())
    gw = Gateway(load_config(tmp_path), creds)
    for i, study in enumerate(["1.1", "1.1", "2.2"]):
        gw.queue.add(
            sop_instance_uid=f"{study}.{i}",
            study_instance_uid=study,
            received_path="/x",
            received_sha256="0" * 64,
            received_size=1,
            source="test",
        )
    yield gw
    gw.queue.close()


def test_heartbeat_status_has_what_the_platform_asks_for(gateway):
    status = gateway.status_fn()
    assert status["queue_depth"] == 3
    assert status["failures"] == 0
    assert status["disk_free_bytes"] > 0
    assert status["version"]


@pytest.mark.requirement("R-6.1.4")
def test_platform_commands_stop_resume_and_retry(gateway):
    assert gateway.on_command({"id": 1, "kind": "stop", "args": {"study": "1.1"}}).startswith("2 ")
    assert gateway.queue.counts()[STOPPED] == 2
    gateway.on_command({"id": 2, "kind": "stop", "args": {}})
    assert gateway.queue.counts()[STOPPED] == 3
    gateway.on_command({"id": 3, "kind": "resume", "args": {}})
    assert gateway.queue.counts()[PENDING] == 3
    entry = gateway.queue.claim()
    gateway.queue.fail(entry.id, "boom", retry_in=None)
    assert gateway.queue.counts()[FAILED] == 1
    gateway.on_command({"id": 4, "kind": "retry_all", "args": {}})
    assert gateway.queue.counts()[FAILED] == 0


def test_unknown_command_and_report_without_a_pacs_are_refused(gateway):
    with pytest.raises(ValueError, match="unknown command"):
        gateway.on_command({"id": 5, "kind": "format_disk"})
    with pytest.raises(ValueError, match="no clinic PACS"):
        gateway.on_command({"id": 6, "kind": "send_report", "args": {"url": "http://127.0.0.1:9/x"}})


def test_a_gateway_without_a_usable_platform_certificate_does_not_start(tmp_path):
    from vetpacs.gateway.protect import ProtectionError

    write_default(tmp_path)
    creds = Credentials("http://127.0.0.1:9", "k", "vp_secret", b"not a certificate")
    with pytest.raises(ProtectionError):
        Gateway(load_config(tmp_path), creds)
