"""Every command the platform queues is one the gateway understands (platform -> beat -> on_command)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from vetpacs.apps.devices import services, workflow
from vetpacs.apps.devices.models import Command
from vetpacs.apps.devices.models import Gateway as GatewayRow
from vetpacs.gateway.config import load_config
from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.run import Gateway

ACTOR = services.Actor(user_id=None, label="test")


@pytest.fixture
def gateway(tmp_path):
    config = load_config(tmp_path, spool_dir=tmp_path / "spool", protect_identity=False)
    gw = Gateway(config, Credentials("http://127.0.0.1:9", "gw_x", "vp_x", b""))
    yield gw
    gw.uploader.shutdown()


@pytest.fixture(autouse=True)
def _fresh_device_caches():
    services.reset_caches()
    yield
    services.reset_caches()


@pytest.mark.requirement("R-8.3a")
@pytest.mark.parametrize(
    ("kind", "args"),
    [("retry_all", {}), ("stop", {}), ("resume", {}), ("stop", {"study": "1.2.3"}), ("resume", {"entry": 1})],
)
def test_queue_commands_from_the_platform_run_on_the_gateway(db, clinic, gateway, kind, args):
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR)
    secret = services.enrol(code=code)["secret"]
    services.queue_command(gateway=GatewayRow.objects.get(), kind=kind, args=args, actor=ACTOR)
    beat = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").post(
        "/api/v1/devices/heartbeat", data="{}", content_type="application/json"
    )
    (command,) = beat.json()["commands"]
    assert "entries" in gateway.on_command(json.loads(json.dumps(command)))
    assert Command.objects.get().state == Command.State.DELIVERED


def test_every_platform_command_kind_but_send_report_is_handled_by_the_queue(gateway):
    for kind in workflow.COMMAND_KINDS:
        if kind != "send_report":
            gateway.on_command({"id": 1, "kind": kind, "args": {}})
