"""Gateway use cases against the database: enrolment, heartbeats, offline sweep, commands, records."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.devices import services
from vetpacs.apps.devices.models import Command, Gateway
from vetpacs.apps.orgs.services import authenticate_token
from vetpacs.core.errors import Errors, VetpacsError

ACTOR = services.Actor(user_id=None, label="test")


def _token_id(enrolled) -> int:
    return authenticate_token(enrolled["secret"]).token_id


@pytest.mark.requirement("R-8.3a")
def test_enrolment_code_works_once(registered):
    _, code = registered
    reply = services.enrol(code=code, hostname="pc", version="0.1.0")
    assert reply["key_id"].startswith("gw_")
    assert authenticate_token(reply["secret"]) is not None
    assert "BEGIN CERTIFICATE" in reply["platform_public_key_pem"]
    with pytest.raises(VetpacsError) as err:
        services.enrol(code=code)
    assert err.value.error is Errors.ENROLMENT_CODE_INVALID


def test_enrolment_code_is_stored_only_as_a_hash(registered):
    gateway, code = registered
    stored = gateway.enrolment_codes.get()
    assert code not in stored.code_hash and code.replace("-", "") not in stored.code_hash


def test_expired_enrolment_code_is_refused(clinic):
    _, code = services.register_gateway(organisation_id=clinic.id, name="gw", actor=ACTOR, ttl_hours=0)
    with pytest.raises(VetpacsError) as err:
        services.enrol(code=code)
    assert err.value.error is Errors.ENROLMENT_CODE_INVALID


def test_code_typed_in_lower_case_without_dashes_enrols(registered):
    _, code = registered
    assert services.enrol(code=code.replace("-", "").lower())["secret"]


def test_two_gateways_of_one_clinic_need_different_names(registered, clinic):
    with pytest.raises(VetpacsError) as err:
        services.register_gateway(organisation_id=clinic.id, name="放射科前置机", actor=ACTOR)
    assert err.value.error is Errors.GATEWAY_NAME_TAKEN


def test_first_heartbeat_brings_gateway_online_and_is_audited(enrolled):
    reply = services.heartbeat(
        secret=enrolled["secret"],
        status={"version": "0.1.0", "queue_depth": 12, "failures": 1, "disk_free_bytes": 10**9},
    )
    assert reply["commands"] == [] and reply["interval_s"] == 15
    gateway = Gateway.objects.get()
    assert gateway.state == "online" and gateway.queue_depth == 12 and gateway.failures == 1
    assert AuditEvent.objects.filter(action="gateway.came_online").count() == 1
    services.heartbeat(secret=enrolled["secret"], status={"queue_depth": 3})
    assert AuditEvent.objects.filter(action="gateway.came_online").count() == 1  # no row per beat


def test_beat_of_an_online_gateway_is_one_statement(enrolled):
    secret = enrolled["secret"]
    services.heartbeat(secret=secret, status={})
    services._last_sweep[0] = float("inf")  # keep the sweep out of the count
    try:
        with CaptureQueriesContext(connection) as ctx:
            services.heartbeat(secret=secret, status={"queue_depth": 5})
    finally:
        services._last_sweep[0] = 0.0
    assert [q["sql"].split()[0].upper() for q in ctx.captured_queries] == ["UPDATE"]
    assert Gateway.objects.get().queue_depth == 5


def test_revoking_the_token_elsewhere_stops_the_very_next_beat(enrolled):
    from vetpacs.apps.orgs.models import ApiToken

    services.heartbeat(secret=enrolled["secret"], status={})
    # as another platform process would: the row changes, this process's caches do not know
    ApiToken.objects.update(revoked_at=timezone.now())
    from vetpacs.apps.orgs import services as orgs

    orgs._principals.clear()
    with pytest.raises(VetpacsError) as err:
        services.heartbeat(secret=enrolled["secret"], status={})
    assert err.value.error is Errors.INVALID_TOKEN


def test_command_queued_while_online_is_picked_up_by_the_flag(enrolled):
    services.heartbeat(secret=enrolled["secret"], status={})
    assert services.heartbeat(secret=enrolled["secret"], status={})["commands"] == []
    command = services.queue_command(gateway=Gateway.objects.get(), kind="retry_all", args={}, actor=ACTOR)
    assert [c["id"] for c in services.heartbeat(secret=enrolled["secret"], status={})["commands"]] == [
        command.id
    ]
    assert not Gateway.objects.get().commands_waiting


def test_gateway_goes_offline_after_three_missed_beats(enrolled, clinic):
    services.heartbeat(secret=enrolled["secret"], status={})
    later = timezone.now() + dt.timedelta(seconds=46)
    assert services.sweep_offline(now=timezone.now() + dt.timedelta(seconds=40)) == []
    went = services.sweep_offline(now=later)
    assert went == [Gateway.objects.get().id]
    assert Gateway.objects.get().state == "offline"
    event = AuditEvent.objects.get(action="gateway.went_offline")
    assert event.organisation_id == clinic.id
    services.heartbeat(secret=enrolled["secret"], status={})
    assert AuditEvent.objects.filter(action="gateway.came_online").count() == 2


def test_gateway_counts_split_online_and_offline(enrolled, clinic, other_clinic):
    assert services.gateway_counts([clinic.id]) == {"online": 0, "offline": 1}
    services.heartbeat(secret=enrolled["secret"], status={})
    assert services.gateway_counts([clinic.id]) == {"online": 1, "offline": 0}
    assert services.gateway_counts([other_clinic.id]) == {"online": 0, "offline": 0}
    Gateway.objects.update(last_seen_at=timezone.now() - dt.timedelta(minutes=5))
    assert services.gateway_counts([clinic.id]) == {"online": 0, "offline": 1}


def test_command_is_handed_out_once_then_acknowledged(enrolled):
    secret = enrolled["secret"]
    gateway = Gateway.objects.get()
    command = services.queue_command(gateway=gateway, kind="retry_all", args={}, actor=ACTOR)
    first = services.heartbeat(secret=secret, status={})
    assert first["commands"] == [{"id": command.id, "kind": "retry_all", "args": {}}]
    assert services.heartbeat(secret=secret, status={})["commands"] == []
    services.heartbeat(
        secret=secret, status={"acks": [{"id": command.id, "ok": True, "detail": "7 retried"}]}
    )
    command.refresh_from_db()
    assert command.state == "done" and command.result == "7 retried"
    assert AuditEvent.objects.filter(
        action="gateway.command_acknowledged", target=f"command:{command.id}"
    ).exists()


def test_failed_command_keeps_its_reason(enrolled):
    secret = enrolled["secret"]
    command = services.queue_command(
        gateway=Gateway.objects.get(), kind="send_report", args={"url": "http://x/dicomweb/a"}, actor=ACTOR
    )
    services.heartbeat(secret=secret, status={})
    services.heartbeat(
        secret=secret, status={"acks": [{"id": command.id, "ok": False, "detail": "PACS down"}]}
    )
    command.refresh_from_db()
    assert command.state == "failed" and "PACS down" in command.result


def test_ack_of_another_gateways_command_changes_nothing(enrolled, clinic):
    other, code = services.register_gateway(organisation_id=clinic.id, name="second", actor=ACTOR)
    other_reply = services.enrol(code=code)
    command = services.queue_command(
        gateway=Gateway.objects.get(name="放射科前置机"), kind="retry_all", args={}, actor=ACTOR
    )
    services.heartbeat(secret=enrolled["secret"], status={})
    services.heartbeat(secret=other_reply["secret"], status={"acks": [{"id": command.id, "ok": False}]})
    command.refresh_from_db()
    assert command.state == Command.State.DELIVERED


def test_revoked_gateway_cannot_beat(enrolled):
    gateway = Gateway.objects.get()
    services.revoke_gateway(gateway=gateway, actor=ACTOR)
    assert authenticate_token(enrolled["secret"]) is None


def test_bad_status_is_refused_with_the_field_named(enrolled):
    with pytest.raises(VetpacsError) as err:
        services.heartbeat(secret=enrolled["secret"], status={"queue_depth": -1})
    assert "queue_depth" in err.value.detail


def test_ordinary_clinic_token_is_not_a_gateway(token):
    with pytest.raises(VetpacsError) as err:
        services.heartbeat(secret=token, status={})
    assert err.value.error is Errors.FORBIDDEN


@pytest.mark.requirement("R-6.1.2")
def test_records_are_stored_once_per_source_and_audited(enrolled, clinic):
    rec = {
        "kind": "order",
        "source_id": "hl7:MSG0001",
        "patient_id": "P-17",
        "accession_number": "A-9",
        "data": {"species": "Canine", "owner": "张三"},
    }
    assert services.store_records(token_id=_token_id(enrolled), records=[rec]) == {"created": 1, "updated": 0}
    rec["data"]["breed"] = "Beagle"
    assert services.store_records(token_id=_token_id(enrolled), records=[rec]) == {"created": 0, "updated": 1}
    assert services.records_for({clinic.id}, patient_id="P-17").get().data["breed"] == "Beagle"
    assert AuditEvent.objects.filter(action="record.imported").count() == 2


def test_record_without_patient_id_is_refused(enrolled):
    with pytest.raises(VetpacsError) as err:
        services.store_records(token_id=_token_id(enrolled), records=[{"kind": "order", "source_id": "x"}])
    assert "patient_id" in err.value.detail


@pytest.mark.requirement("R-6.1.2")
def test_owner_identity_in_a_record_is_stored_encrypted_and_shown_to_the_clinic(enrolled, clinic):
    from vetpacs.apps.devices.models import Record
    from vetpacs.apps.orgs.services import Principal, visible_organisation_ids

    rec = {
        "kind": "patient",
        "source_id": "hl7:HIS:9",
        "patient_id": "P-9",
        "data": {
            "patient_name": "张^咪咪",
            "owner": "张三",
            "owner_phone": "13800138000",
            "species": "Feline",
        },
    }
    services.store_records(token_id=_token_id(enrolled), records=[rec])
    stored = Record.objects.get().data
    assert (
        "张三" not in str(stored) and "13800138000" not in str(stored) and "张" not in stored["patient_name"]
    )
    assert stored["owner"].startswith("ANON") and stored["patient_name"] == f"{stored['owner']}^咪咪"
    principal = Principal(organisation_ids=frozenset(visible_organisation_ids([clinic.id])), label="test")
    (shown,) = services.read_records(principal, patient_id="P-9")
    assert shown["data"]["owner"] == "张三" and shown["data"]["owner_phone"] == "13800138000"
    assert shown["data"]["patient_name"] == "张三^咪咪"
    assert AuditEvent.objects.filter(action="record.viewed").exists()


@pytest.mark.requirement("R-6.2.3d")
def test_report_is_sent_back_through_the_clinics_most_recently_seen_gateway(enrolled, clinic, other_clinic):
    services.heartbeat(secret=enrolled["secret"], status={})
    (command,) = services.send_report_back(
        organisation_id=clinic.id, wado_url="https://p/dicomweb/studies/1/series/2/instances/3", actor=ACTOR
    )
    assert command.kind == "send_report" and command.gateway.organisation_id == clinic.id
    reply = services.heartbeat(secret=enrolled["secret"], status={})
    assert reply["commands"][0]["args"]["url"].endswith("/instances/3")
    with pytest.raises(VetpacsError) as err:
        services.send_report_back(organisation_id=other_clinic.id, wado_url="https://p/x", actor=ACTOR)
    assert err.value.error is Errors.NOT_FOUND
