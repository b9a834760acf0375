"""Gateway use cases: register and enrol, heartbeats, the offline sweep, commands, and uploaded records.

The heartbeat is the hot path (R-8.3a: 3000 gateways at once): a beat from a gateway already online
is one indexed UPDATE plus one indexed SELECT for queued commands, and writes no audit row. Only a
change of state is audited: `gateway.came_online` when a beat finds it offline, `gateway.went_offline`
when the sweep finds it silent for three intervals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.devices import workflow
from vetpacs.apps.devices.models import Command, EnrolmentCode, Gateway, Record
from vetpacs.apps.orgs import services as orgs
from vetpacs.core.errors import Errors, VetpacsError

# Enrolment codes: 20 characters of Crockford-like base32 in groups of five, easy to read aloud.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
_CODE_LENGTH = 20
# What a gateway may add to its status beyond the known fields (last error, throughput...).
MAX_STATUS_BYTES = 4096
MAX_RECORDS_PER_UPLOAD = 1000


def heartbeat_interval_s() -> float:
    return float(getattr(settings, "VETPACS_GATEWAY_HEARTBEAT_SECONDS", 15))


def enrolment_ttl_hours() -> int:
    return int(getattr(settings, "VETPACS_GATEWAY_ENROLMENT_TTL_HOURS", 24))


@dataclass(frozen=True)
class Actor:
    """Who acts on gateways: a user or a token of the organisation, for the audit log."""

    user_id: int | None
    label: str
    ip: str | None = None


def _hash(code: str) -> str:
    return hashlib.sha256(workflow.normalise_code(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 5] for i in range(0, _CODE_LENGTH, 5))


# -- registration and enrolment ----------------------------------------------------------------------
def register_gateway(
    *, organisation_id: int, name: str, actor: Actor, ttl_hours: int | None = None
) -> tuple[Gateway, str]:
    """Create a gateway awaiting enrolment and its one-time code (returned in clear, shown once)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise VetpacsError(Errors.BAD_REQUEST, "a gateway needs a name of 1 to 100 characters")
    try:
        with transaction.atomic():
            gateway = Gateway.objects.create(
                organisation_id=organisation_id,
                name=name,
                key_id="gw_" + secrets.token_hex(8),
                created_by_id=actor.user_id,
            )
            code = _issue_code(gateway, ttl_hours)
            audit.record(
                "gateway.registered",
                organisation_id=organisation_id,
                user_id=actor.user_id,
                actor=actor.label,
                target=f"gateway:{gateway.id}",
                ip=actor.ip,
                detail={"name": name, "key_id": gateway.key_id},
            )
    except IntegrityError:
        raise VetpacsError(
            Errors.GATEWAY_NAME_TAKEN, f"this organisation already has a gateway named {name!r}"
        ) from None
    return gateway, code


def new_enrolment_code(*, gateway: Gateway, actor: Actor, ttl_hours: int | None = None) -> str:
    """A fresh code for a gateway (re-installing a clinic PC): earlier unused codes stop working."""
    if gateway.state == Gateway.State.REVOKED:
        raise VetpacsError(Errors.GATEWAY_REVOKED, f"gateway {gateway.name} is revoked")
    with transaction.atomic():
        EnrolmentCode.objects.filter(gateway=gateway, used_at__isnull=True).update(expires_at=timezone.now())
        code = _issue_code(gateway, ttl_hours)
        audit.record(
            "gateway.enrolment_code_issued",
            organisation_id=gateway.organisation_id,
            user_id=actor.user_id,
            actor=actor.label,
            target=f"gateway:{gateway.id}",
            ip=actor.ip,
        )
    return code


def _issue_code(gateway: Gateway, ttl_hours: int | None) -> str:
    code = _new_code()
    hours = ttl_hours if ttl_hours is not None else enrolment_ttl_hours()
    EnrolmentCode.objects.create(
        gateway=gateway, code_hash=_hash(code), expires_at=timezone.now() + dt.timedelta(hours=hours)
    )
    return code


def enrol(*, code: str, hostname: str = "", version: str = "", ip: str | None = None) -> dict[str, Any]:
    """Exchange a one-time code for the gateway's credentials; the code is spent only if this succeeds."""
    if not workflow.looks_like_code(code):
        raise VetpacsError(Errors.ENROLMENT_CODE_INVALID, "the enrolment code is not well-formed")
    now = timezone.now()
    with transaction.atomic():
        # Single use: only one request can flip used_at from NULL, however many race.
        spent = EnrolmentCode.objects.filter(
            code_hash=_hash(code), used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if not spent:
            raise VetpacsError(Errors.ENROLMENT_CODE_INVALID)
        entry = EnrolmentCode.objects.select_related("gateway", "gateway__organisation").get(
            code_hash=_hash(code)
        )
        gateway = Gateway.objects.select_for_update().get(pk=entry.gateway_id)
        if gateway.state == Gateway.State.REVOKED:
            raise VetpacsError(Errors.ENROLMENT_CODE_INVALID)
        organisation = entry.gateway.organisation
        if gateway.token_id is not None:  # re-enrolment: the old installation's secret stops working
            _revoke_token(gateway.token_id, actor_user_id=None)
        secret = orgs.issue_token(organisation=organisation, name=f"gateway:{gateway.name}")
        principal = orgs.authenticate_token(secret)
        assert principal is not None and principal.token_id is not None  # noqa: S101 - just issued
        gateway.token_id = principal.token_id
        gateway.enrolled_at = now
        gateway.hostname = hostname[:200]
        gateway.version = version[:40]
        gateway.state = Gateway.State.OFFLINE
        gateway.save(update_fields=["token_id", "enrolled_at", "hostname", "version", "state"])
        audit.record(
            "gateway.enrolled",
            organisation_id=organisation.id,
            actor=f"gateway:{gateway.key_id}",
            target=f"gateway:{gateway.id}",
            ip=ip,
            detail={"hostname": hostname[:200], "version": version[:40]},
        )
    _gateway_by_token.pop(gateway.token_id, None)
    return {
        "gateway_id": gateway.id,
        "name": gateway.name,
        "organisation": organisation.name,
        "key_id": gateway.key_id,
        "secret": secret,
        "platform_public_key_pem": _platform_public_key_pem().decode("ascii"),
        "heartbeat_interval_s": heartbeat_interval_s(),
    }


def _platform_public_key_pem() -> bytes:
    """The certificate gateways encrypt owner identity to (R-6.1.3b/c), from the identity app."""
    from vetpacs.apps.identity import envelope

    return envelope.platform_public_key_pem()


def _revoke_token(token_id: int, *, actor_user_id: int | None) -> None:
    from vetpacs.apps.orgs.models import ApiToken

    token = ApiToken.objects.filter(pk=token_id).first()
    if token is not None:
        orgs.revoke_token(token=token, user_id=actor_user_id)


def revoke_gateway(*, gateway: Gateway, actor: Actor) -> None:
    """Stop a gateway: its secret is refused from now on and its codes cannot enrol it again."""
    with transaction.atomic():
        if gateway.token_id is not None:
            _revoke_token(gateway.token_id, actor_user_id=actor.user_id)
        EnrolmentCode.objects.filter(gateway=gateway, used_at__isnull=True).update(expires_at=timezone.now())
        Gateway.objects.filter(pk=gateway.pk).update(state=Gateway.State.REVOKED, revoked_at=timezone.now())
        audit.record(
            "gateway.revoked",
            organisation_id=gateway.organisation_id,
            user_id=actor.user_id,
            actor=actor.label,
            target=f"gateway:{gateway.id}",
            ip=actor.ip,
        )
    _gateway_by_token.pop(gateway.token_id, None)


# -- heartbeats ------------------------------------------------------------------------------------
# token id -> (gateway id, organisation id). A revoked gateway's token is refused before this is read.
_gateway_by_token: dict[int, tuple[int, int]] = {}
_sweep_lock = threading.Lock()
_last_sweep = [0.0]


def reset_caches() -> None:
    """Forget what this process remembered (tests roll databases back and reuse ids)."""
    _gateway_by_token.clear()
    _hot.clear()
    _last_sweep[0] = 0.0


def gateway_for_token(token_id: int | None) -> tuple[int, int]:
    """(gateway id, organisation id) of the gateway a token belongs to, or FORBIDDEN."""
    if token_id is None:
        raise VetpacsError(Errors.FORBIDDEN, "only a gateway's own credentials may send heartbeats")
    found = _gateway_by_token.get(token_id)
    if found is None:
        row = (
            Gateway.objects.filter(token_id=token_id)
            .exclude(state=Gateway.State.REVOKED)
            .values_list("id", "organisation_id")
            .first()
        )
        if row is None:
            raise VetpacsError(Errors.FORBIDDEN, "this token does not belong to an enrolled gateway")
        found = _gateway_by_token[token_id] = (row[0], row[1])
    return found


def _int_field(status: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = status.get(key)
    if value is None and optional:
        return None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VetpacsError(Errors.BAD_REQUEST, f"{key} must be a whole number of 0 or more")
    return value


def _status_fields(status: dict[str, Any], ip: str | None) -> tuple[dict[str, Any], list[Any]]:
    """The columns a beat writes, checked, and the acknowledgements it carries."""
    version = status.get("version", "")
    if not isinstance(version, str):
        raise VetpacsError(Errors.BAD_REQUEST, "version must be text")
    acks = status.get("acks") or []
    if not isinstance(acks, list):
        raise VetpacsError(Errors.BAD_REQUEST, "acks must be a list")
    extra = {
        k: v
        for k, v in status.items()
        if k not in ("version", "queue_depth", "failures", "disk_free_bytes", "acks")
    }
    if len(repr(extra)) > MAX_STATUS_BYTES:
        raise VetpacsError(Errors.BAD_REQUEST, f"the status may carry at most {MAX_STATUS_BYTES} bytes")
    fields = {
        "last_seen_at": timezone.now(),
        "last_ip": ip,
        "version": version[:40],
        "queue_depth": _int_field(status, "queue_depth"),
        "failures": _int_field(status, "failures"),
        "disk_free_bytes": _int_field(status, "disk_free_bytes", optional=True),
        "last_status": extra,
    }
    if not fields["version"]:
        del fields["version"]  # a beat that does not say its version keeps the one known
    return fields, acks


# SHA-256 of a gateway's secret -> (gateway id, organisation id, token id), learnt on its first beat
# in this process. Every later beat still checks the token (revoked, expired) and the gateway's
# state inside its one UPDATE, so a revocation anywhere takes effect on the next beat.
_hot: dict[str, tuple[int, int, int]] = {}


def heartbeat(*, secret: str, status: dict[str, Any], ip: str | None = None) -> dict[str, Any]:
    """Record a beat; hand out queued commands once; take the gateway's acknowledgements.

    The steady state is one statement: an UPDATE of the gateway's row, conditioned on its token
    being live and the gateway online, RETURNING whether commands wait (R-8.3a).
    """
    fields, acks = _status_fields(status, ip)
    key = hashlib.sha256(secret.encode()).hexdigest()
    hot = _hot.get(key)
    waiting = _hot_update(hot, fields) if hot is not None else None
    if hot is None or waiting is None:
        # First beat here, or the gateway was offline, revoked, or its token changed: the full check.
        _hot.pop(key, None)
        principal = orgs.authenticate_token(secret)
        if principal is None:
            raise VetpacsError(Errors.INVALID_TOKEN)
        gateway_id, organisation_id = gateway_for_token(principal.token_id)
        _came_online(gateway_id, organisation_id, fields, ip)
        assert principal.token_id is not None  # noqa: S101 - gateway_for_token refused None
        hot = _hot[key] = (gateway_id, organisation_id, principal.token_id)
        waiting = True
    gateway_id, organisation_id, _ = hot
    if acks:
        _acknowledge(gateway_id, organisation_id, acks)
    commands = _deliver(gateway_id) if waiting else []
    _maybe_sweep()
    return {
        "interval_s": heartbeat_interval_s(),
        "commands": commands,
        "server_time": fields["last_seen_at"].isoformat(),
    }


_hot_sql: dict[tuple[str, tuple[str, ...]], str] = {}  # (database vendor, columns) -> statement


def _hot_statement(columns: tuple[str, ...]) -> str:
    key = (connection.vendor, columns)
    sql = _hot_sql.get(key)
    if sql is None:
        from vetpacs.apps.orgs.models import ApiToken

        qn = connection.ops.quote_name
        g, t = Gateway._meta, ApiToken._meta
        # Only quoted table and column names from the models go into the text; every value is a parameter.
        assignments = ", ".join(f"{qn(g.get_field(c).column)} = %s" for c in columns)
        sql = _hot_sql[key] = (
            f"UPDATE {qn(g.db_table)} SET {assignments}"  # noqa: S608
            f" WHERE {qn('id')} = %s AND {qn('state')} = %s AND {qn('token_id')} IN"
            f" (SELECT {qn('id')} FROM {qn(t.db_table)} WHERE {qn('id')} = %s AND {qn('revoked_at')} IS NULL"
            f" AND ({qn('expires_at')} IS NULL OR {qn('expires_at')} > %s))"
            f" RETURNING {qn('commands_waiting')}"
        )
    return sql


def _hot_update(hot: tuple[int, int, int], fields: dict[str, Any]) -> bool | None:
    """Write the beat if the gateway is online and its token live; None when no row matched."""
    gateway_id, _, token_id = hot
    g = Gateway._meta
    columns = tuple(fields)
    values = [g.get_field(c).get_db_prep_save(fields[c], connection) for c in columns]
    now = g.get_field("last_seen_at").get_db_prep_save(fields["last_seen_at"], connection)
    with connection.cursor() as cursor:
        cursor.execute(
            _hot_statement(columns), [*values, gateway_id, Gateway.State.ONLINE.value, token_id, now]
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def _came_online(gateway_id: int, organisation_id: int, fields: dict[str, Any], ip: str | None) -> None:
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().filter(pk=gateway_id).first()
        if gateway is None or gateway.state == Gateway.State.REVOKED:
            for token_id, (cached_gateway_id, _) in list(_gateway_by_token.items()):
                if cached_gateway_id == gateway_id:
                    _gateway_by_token.pop(token_id, None)
            raise VetpacsError(Errors.GATEWAY_REVOKED)
        was = gateway.state
        Gateway.objects.filter(pk=gateway_id).update(state=Gateway.State.ONLINE, **fields)
        if was != Gateway.State.ONLINE:
            audit.record(
                "gateway.came_online",
                organisation_id=organisation_id,
                actor=f"gateway:{gateway.key_id}",
                target=f"gateway:{gateway_id}",
                ip=ip,
                detail={"was": was, "version": fields.get("version", gateway.version)},
            )


def _acknowledge(gateway_id: int, organisation_id: int, acks: list[Any]) -> None:
    now = timezone.now()
    with transaction.atomic():
        for ack in acks:
            if not isinstance(ack, dict) or not isinstance(ack.get("id"), int):
                raise VetpacsError(Errors.BAD_REQUEST, "each ack needs an integer id")
            ok = bool(ack.get("ok"))
            detail = str(ack.get("detail") or "")[:2000]
            done = Command.objects.filter(
                pk=ack["id"], gateway_id=gateway_id, state=Command.State.DELIVERED
            ).update(state=Command.State.DONE if ok else Command.State.FAILED, acked_at=now, result=detail)
            if done:
                audit.record(
                    "gateway.command_acknowledged",
                    organisation_id=organisation_id,
                    actor=f"gateway:{gateway_id}",
                    target=f"command:{ack['id']}",
                    result="ok" if ok else "failed",
                    detail={"detail": detail[:500]},
                )


def _deliver(gateway_id: int) -> list[dict[str, Any]]:
    # Clear the flag before looking: a command queued after this sets it again for the next beat.
    Gateway.objects.filter(pk=gateway_id, commands_waiting=True).update(commands_waiting=False)
    queued = list(
        Command.objects.filter(gateway_id=gateway_id, state=Command.State.QUEUED)
        .order_by("id")
        .values("id", "kind", "args")
    )
    if not queued:
        return []
    now = timezone.now()
    out = []
    for command in queued:
        # Once: of two beats racing, only the one whose update flips the state hands it out.
        if Command.objects.filter(pk=command["id"], state=Command.State.QUEUED).update(
            state=Command.State.DELIVERED, delivered_at=now
        ):
            out.append(command)
    return out


def _maybe_sweep() -> None:
    """Run the offline sweep at most once per heartbeat interval per process."""
    now = time.monotonic()
    if now - _last_sweep[0] < heartbeat_interval_s() or not _sweep_lock.acquire(blocking=False):
        return
    try:
        _last_sweep[0] = now
        sweep_offline()
    finally:
        _sweep_lock.release()


def sweep_offline(now: dt.datetime | None = None) -> list[int]:
    """Mark gateways silent for three intervals offline, one audit event each; returns their ids."""
    now = now or timezone.now()
    threshold = now - workflow.offline_after(heartbeat_interval_s())
    silent = list(
        Gateway.objects.filter(state=Gateway.State.ONLINE, last_seen_at__lt=threshold).values_list(
            "id", "organisation_id", "key_id", "last_seen_at"
        )
    )
    went = []
    for gateway_id, organisation_id, key_id, last_seen_at in silent:
        with transaction.atomic():
            # A beat may have arrived since the select: only a still-silent gateway goes offline.
            if Gateway.objects.filter(
                pk=gateway_id, state=Gateway.State.ONLINE, last_seen_at__lt=threshold
            ).update(state=Gateway.State.OFFLINE):
                audit.record(
                    "gateway.went_offline",
                    organisation_id=organisation_id,
                    actor="platform",
                    target=f"gateway:{gateway_id}",
                    detail={"key_id": key_id, "last_seen_at": last_seen_at.isoformat()},
                )
                went.append(gateway_id)
    return went


# -- reading -----------------------------------------------------------------------------------------
def visible_gateways(organisation_ids: frozenset[int] | set[int]):  # noqa: ANN201 - QuerySet[Gateway]
    return Gateway.objects.filter(organisation_id__in=organisation_ids).select_related("organisation")


def get_gateway(organisation_ids: frozenset[int] | set[int], gateway_id: int) -> Gateway:
    """A gateway the caller may see; another clinic's is 404, as if it did not exist."""
    gateway = visible_gateways(organisation_ids).filter(pk=gateway_id).first()
    if gateway is None:
        raise VetpacsError(Errors.NOT_FOUND, f"no gateway {gateway_id}")
    return gateway


def is_online(gateway: Gateway, now: dt.datetime | None = None) -> bool:
    return gateway.state == Gateway.State.ONLINE and workflow.is_online(
        gateway.last_seen_at, now or timezone.now(), heartbeat_interval_s()
    )


def gateway_counts(organisation_ids: frozenset[int] | set[int] | list[int]) -> dict[str, int]:
    """{"online": n, "offline": m} of the enrolled, unrevoked gateways of these organisations."""
    threshold = timezone.now() - workflow.offline_after(heartbeat_interval_s())
    online_q = Q(state=Gateway.State.ONLINE, last_seen_at__gte=threshold)
    row = (
        Gateway.objects.filter(organisation_id__in=list(organisation_ids))
        .exclude(state__in=[Gateway.State.PENDING, Gateway.State.REVOKED])
        .aggregate(total=Count("id"), online=Count("id", filter=online_q))
    )
    return {"online": row["online"], "offline": row["total"] - row["online"]}


# -- commands ----------------------------------------------------------------------------------------
def queue_command(*, gateway: Gateway, kind: str, args: dict[str, Any], actor: Actor) -> Command:
    problem = workflow.check_command(kind, args)
    if problem:
        raise VetpacsError(Errors.BAD_REQUEST, problem)
    if gateway.state in (Gateway.State.REVOKED, Gateway.State.PENDING):
        raise VetpacsError(Errors.GATEWAY_REVOKED, f"gateway {gateway.name} is not enrolled")
    with transaction.atomic():
        command = Command.objects.create(gateway=gateway, kind=kind, args=args, created_by_id=actor.user_id)
        Gateway.objects.filter(pk=gateway.pk).update(commands_waiting=True)
        audit.record(
            "gateway.command_queued",
            organisation_id=gateway.organisation_id,
            user_id=actor.user_id,
            actor=actor.label,
            target=f"command:{command.id}",
            ip=actor.ip,
            detail={"gateway": gateway.id, "kind": kind, "args": args},
        )
    return command


def send_report_back(*, organisation_id: int, wado_url: str, actor: Actor) -> list[Command]:
    """R-6.2.3d: ask the clinic's most recently seen gateway to C-STORE a report to the clinic's PACS."""
    gateways = list(
        Gateway.objects.filter(organisation_id=organisation_id)
        .exclude(state__in=[Gateway.State.PENDING, Gateway.State.REVOKED])
        .order_by("-last_seen_at")
    )
    if not gateways:
        raise VetpacsError(Errors.NOT_FOUND, "this clinic has no enrolled gateway to send the report to")
    return [queue_command(gateway=gateways[0], kind="send_report", args={"url": wado_url}, actor=actor)]


# -- records (R-6.1.2) ------------------------------------------------------------------------------
def store_records(*, token_id: int | None, records: list[Any], ip: str | None = None) -> dict[str, int]:
    """Store patient/order records a gateway imported; the same source id updates, never duplicates."""
    gateway_id, organisation_id = gateway_for_token(token_id)
    if not isinstance(records, list) or not records:
        raise VetpacsError(Errors.BAD_REQUEST, "records must be a non-empty list")
    if len(records) > MAX_RECORDS_PER_UPLOAD:
        raise VetpacsError(Errors.BAD_REQUEST, f"at most {MAX_RECORDS_PER_UPLOAD} records per upload")
    clean = [_clean_record(r, i) for i, r in enumerate(records)]
    created = updated = 0
    with transaction.atomic():
        for r in clean:
            r["data"] = _pseudonymise(organisation_id, r["data"])
            _, made = Record.objects.update_or_create(
                organisation_id=organisation_id,
                source_id=r["source_id"],
                defaults={
                    "gateway_id": gateway_id,
                    "kind": r["kind"],
                    "patient_id": r["patient_id"],
                    "accession_number": r["accession_number"],
                    "data": r["data"],
                },
            )
            created += made
            updated += not made
        audit.record(
            "record.imported",
            organisation_id=organisation_id,
            actor=f"gateway:{gateway_id}",
            target=f"gateway:{gateway_id}",
            ip=ip,
            detail={"created": created, "updated": updated},
        )
    return {"created": created, "updated": updated}


def _clean_record(r: Any, index: int) -> dict[str, Any]:
    where = f"record {index}"
    if not isinstance(r, dict):
        raise VetpacsError(Errors.BAD_REQUEST, f"{where} must be an object")
    kind = r.get("kind")
    if kind not in Record.Kind.values:
        raise VetpacsError(Errors.BAD_REQUEST, f"{where}: kind must be patient or order")
    out: dict[str, Any] = {"kind": kind}
    for key, limit, required in (
        ("source_id", 200, True),
        ("patient_id", 64, True),
        ("accession_number", 64, False),
    ):
        value = r.get(key) or ""
        if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
            raise VetpacsError(Errors.BAD_REQUEST, f"{where}: {key} must be text of 1 to {limit} characters")
        out[key] = value.strip()
    data = r.get("data") or {}
    if not isinstance(data, dict):
        raise VetpacsError(Errors.BAD_REQUEST, f"{where}: data must be an object")
    out["data"] = data
    return out


# Record fields that name the owner (DICOM Responsible Person) or reach them.
_OWNER_KEYS = ("owner", "owner_phone", "owner_address")


def _pseudonymise(organisation_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Owner identity out of the record, into the identity store (encrypted), a pseudonym in its place.

    As for DICOM (dicom/identity.py): the owner is `owner`, and in 'Owner^Pet' the family name of
    `patient_name` is the owner's too. The record keeps the pseudonym; the owning clinic reads the
    originals back through identity.reveal_owner.
    """
    from pydicom.valuerep import PersonName

    from vetpacs.apps.identity import services as identity

    out = dict(data)
    patient = PersonName(str(out.get("patient_name") or ""))
    name = str(out.get("owner") or "").strip() or str(patient.family_name or "").strip()
    fields = {
        "name": name,
        "phone": str(out.get("owner_phone") or "").strip(),
        "address": str(out.get("owner_address") or "").strip(),
    }
    owner = identity.find_or_create_owner(organisation_id=organisation_id, fields=fields)
    if owner is None:
        return out
    for key in _OWNER_KEYS:
        out.pop(key, None)
    out["owner"] = owner.pseudonym
    if patient.family_name:
        out["patient_name"] = (
            f"{owner.pseudonym}^{patient.given_name}" if patient.given_name else owner.pseudonym
        )
    return out


def reveal_record(data: dict[str, Any], organisation_id: int) -> dict[str, Any]:
    """A record's data with the owner's identity restored, for users of the owning clinic."""
    from vetpacs.apps.identity import services as identity
    from vetpacs.apps.identity.models import Owner

    pseudonym = data.get("owner")
    if not pseudonym:
        return data
    owner = Owner.objects.filter(organisation_id=organisation_id, pseudonym=pseudonym).first()
    if owner is None:
        return data
    clear = identity.reveal_owner(owner)
    out = dict(data)
    out["owner"] = clear["name"]
    if clear.get("phone"):
        out["owner_phone"] = clear["phone"]
    if clear.get("address"):
        out["owner_address"] = clear["address"]
    name = str(out.get("patient_name") or "")
    if name == pseudonym or name.startswith(pseudonym + "^"):
        out["patient_name"] = clear["name"] + name[len(pseudonym) :]
    return out


def records_for(
    organisation_ids: frozenset[int] | set[int], *, patient_id: str = "", accession_number: str = ""
):  # noqa: ANN201
    qs = Record.objects.filter(organisation_id__in=organisation_ids).order_by("-updated_at")
    if patient_id:
        qs = qs.filter(patient_id=patient_id)
    if accession_number:
        qs = qs.filter(accession_number=accession_number)
    return qs


def read_records(
    principal: orgs.Principal, *, patient_id: str = "", accession_number: str = "", ip: str | None = None
) -> list[dict[str, Any]]:
    """Records the caller may see (at most 200, newest first), owner identity restored; audited."""
    rows = list(
        records_for(principal.organisation_ids, patient_id=patient_id, accession_number=accession_number)[
            :200
        ]
    )
    out = [
        {
            "id": r.id,
            "kind": r.kind,
            "source_id": r.source_id,
            "patient_id": r.patient_id,
            "accession_number": r.accession_number,
            "data": reveal_record(r.data, r.organisation_id),
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]
    if rows:
        audit.record(
            "record.viewed",
            organisation_id=rows[0].organisation_id,
            user_id=principal.user_id,
            actor=principal.label,
            target=f"records:{patient_id or accession_number or '*'}",
            ip=ip,
            detail={"count": len(rows)},
        )
    return out
