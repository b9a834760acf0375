"""The gateway enrols against a live platform, stores its credentials 0600, beats and runs commands."""

from __future__ import annotations

import json
import stat

import pytest

from vetpacs.apps.devices import services
from vetpacs.apps.devices.models import Command, Gateway
from vetpacs.gateway.credentials import CredentialsError, load_credentials
from vetpacs.gateway.enrol import EnrolmentError, enrol
from vetpacs.gateway.heartbeat import HeartbeatClient

ACTOR = services.Actor(user_id=None, label="test")


@pytest.fixture
def platform(live_server, transactional_db):
    services.reset_caches()
    from vetpacs.apps.orgs.services import create_organisation

    clinic = create_organisation(name="Live Clinic")
    yield live_server.url, clinic
    services.reset_caches()


@pytest.mark.requirement("R-8.3a")
def test_enroll_writes_credentials_readable_only_by_the_gateway(platform, tmp_path):
    url, clinic = platform
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR)
    creds = enrol(url=url, code=code, config_dir=tmp_path)
    path = tmp_path / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_credentials(tmp_path)
    assert loaded == creds and loaded.key_id == Gateway.objects.get().key_id
    assert b"BEGIN CERTIFICATE" in loaded.platform_public_key_pem
    assert "secret" not in repr(loaded) or loaded.secret not in repr(loaded)
    assert set(json.loads(path.read_text())) == {
        "platform_url",
        "key_id",
        "secret",
        "platform_public_key_pem",
    }


def test_enroll_with_a_used_code_fails_and_writes_nothing(platform, tmp_path):
    url, clinic = platform
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR)
    enrol(url=url, code=code, config_dir=tmp_path / "a")
    with pytest.raises(EnrolmentError, match="refused"):
        enrol(url=url, code=code, config_dir=tmp_path / "b")
    assert not (tmp_path / "b" / "credentials.json").exists()


def test_enroll_refuses_to_overwrite_without_force(platform, tmp_path):
    url, clinic = platform
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR)
    enrol(url=url, code=code, config_dir=tmp_path)
    with pytest.raises(EnrolmentError, match="--force"):
        enrol(url=url, code="AAAAA-BBBBB-CCCCC-DDDDD", config_dir=tmp_path)


def test_credentials_open_to_others_are_refused(tmp_path):
    (tmp_path / "credentials.json").write_text("{}")
    (tmp_path / "credentials.json").chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_credentials(tmp_path)


@pytest.mark.requirement("R-8.3a")
def test_heartbeat_reports_status_and_runs_a_queued_command_once(platform, tmp_path):
    url, clinic = platform
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR)
    creds = enrol(url=url, code=code, config_dir=tmp_path)
    ran = []

    def on_command(command):
        ran.append(command)
        return "retried 3 entries"

    client = HeartbeatClient(
        creds, lambda: {"queue_depth": 7, "failures": 2}, on_command, interval_s=15, disk_path=tmp_path
    )
    client.beat_once()
    gateway = Gateway.objects.get()
    assert gateway.state == "online" and gateway.queue_depth == 7 and gateway.failures == 2
    assert gateway.disk_free_bytes > 0 and gateway.version
    command = services.queue_command(gateway=gateway, kind="retry_all", args={}, actor=ACTOR)
    assert [c["id"] for c in client.beat_once()] == [command.id]
    assert client.beat_once() == []  # handed out once; this beat carries the acknowledgement
    command.refresh_from_db()
    assert command.state == Command.State.DONE and command.result == "retried 3 entries"
    assert len(ran) == 1


def test_heartbeat_loop_keeps_going_while_the_platform_is_unreachable(tmp_path):
    from vetpacs.gateway.credentials import Credentials

    creds = Credentials("http://127.0.0.1:9", "gw_x", "vp_x", b"")
    client = HeartbeatClient(creds, dict, lambda c: None, interval_s=0.05, disk_path=tmp_path)
    client.start()
    try:
        import time

        time.sleep(0.3)
    finally:
        client.stop()
    assert client.last_ok is False and "9" in (client.last_error or "")
