"""JSON endpoints under /api/v1/devices/: enrolment, heartbeats and records (gateways), and administration.

Plain Django views rather than the Ninja router: the heartbeat is the hottest path on the platform
(3000 gateways every 15 s, R-8.3a) and needs nothing a schema layer adds. Errors are RFC 9457
problem+json; another clinic's gateway answers 404 as if it did not exist.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from vetpacs.apps.devices import services
from vetpacs.apps.devices.models import Command, Gateway
from vetpacs.apps.orgs.auth import principal_from_request, problem_response, require_csrf
from vetpacs.apps.orgs.services import Principal
from vetpacs.core.errors import Errors, VetpacsError

MAX_BODY_BYTES = 1 << 20
# Roles that may register gateways and send them commands.
ADMIN_ROLES = frozenset({"org_admin", "platform_admin", "device_admin"})


def _json(request: HttpRequest) -> Any:
    if len(request.body) > MAX_BODY_BYTES:
        raise VetpacsError(Errors.PAYLOAD_TOO_LARGE, "a device request body is at most 1 MiB")
    try:
        return json.loads(request.body or b"{}")
    except ValueError as exc:
        raise VetpacsError(Errors.BAD_REQUEST, f"the body is not JSON: {exc}") from None


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def endpoint(methods: tuple[str, ...], *, public: bool = False) -> Callable[..., Any]:
    """Restrict methods, find the caller (unless public), translate VetpacsError once."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # bearer tokens; a session's unsafe request is checked below
        @functools.wraps(fn)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    resp = problem_response(
                        VetpacsError(Errors.METHOD_NOT_ALLOWED, f"{request.method} is not allowed")
                    )
                    resp["Allow"] = ", ".join(methods)
                    return resp
                if not public:
                    principal = principal_from_request(request)
                    if request.method not in ("GET", "HEAD") and not request.headers.get("Authorization"):
                        require_csrf(request, "device request")
                    request.principal = principal  # type: ignore[attr-defined]
                return fn(request, *args, **kwargs)
            except VetpacsError as exc:
                return problem_response(exc)

        return view

    return decorate


# -- the gateway's side ------------------------------------------------------------------------------
@endpoint(("POST",), public=True)
def enrol(request: HttpRequest) -> HttpResponse:
    body = _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        raise VetpacsError(Errors.BAD_REQUEST, 'send {"code": "..."}')
    hostname = body.get("hostname") if isinstance(body.get("hostname"), str) else ""
    version = body.get("version") if isinstance(body.get("version"), str) else ""
    reply = services.enrol(code=body["code"], hostname=hostname, version=version, ip=_ip(request))
    return JsonResponse(reply, status=201)


@endpoint(("POST",), public=True)
def heartbeat(request: HttpRequest) -> HttpResponse:
    # The hot path (R-8.3a): the secret is checked inside the beat's own UPDATE (services.heartbeat),
    # falling back to orgs.authenticate_token on a gateway's first beat in this process.
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise VetpacsError(Errors.UNAUTHENTICATED, "a heartbeat needs 'Authorization: Bearer <secret>'")
    body = _json(request)
    if not isinstance(body, dict):
        raise VetpacsError(Errors.BAD_REQUEST, "the heartbeat body must be a JSON object")
    return JsonResponse(services.heartbeat(secret=secret.strip(), status=body, ip=_ip(request)))


@endpoint(("GET", "POST"))
def records(request: HttpRequest) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    if request.method == "POST":
        body = _json(request)
        rows = body.get("records") if isinstance(body, dict) else None
        result = services.store_records(token_id=principal.token_id, records=rows or [], ip=_ip(request))
        return JsonResponse(result, status=201)
    rows = services.read_records(
        principal,
        patient_id=request.GET.get("patient_id", ""),
        accession_number=request.GET.get("accession_number", ""),
        ip=_ip(request),
    )
    return JsonResponse({"records": rows})


# -- administration ---------------------------------------------------------------------------------
def _admin(request: HttpRequest, organisation_id: int) -> services.Actor:
    """The caller as an actor who may manage this organisation's gateways, or FORBIDDEN."""
    principal: Principal = request.principal  # type: ignore[attr-defined]
    if organisation_id not in principal.organisation_ids:
        raise VetpacsError(Errors.NOT_FOUND)
    if principal.token_id is not None:
        try:
            services.gateway_for_token(principal.token_id)
        except VetpacsError:
            pass  # an organisation's API token (not a gateway's) may administer
        else:
            raise VetpacsError(Errors.FORBIDDEN, "a gateway's credentials cannot administer gateways")
    elif not may_manage(principal.user_id, organisation_id):
        raise VetpacsError(Errors.FORBIDDEN, "managing gateways needs the org_admin role")
    return services.Actor(user_id=principal.user_id, label=principal.label, ip=_ip(request))


def may_manage(user_id: int | None, organisation_id: int) -> bool:
    if user_id is None:
        return False
    from django.contrib.auth import get_user_model

    from vetpacs.apps.orgs.models import Membership

    if get_user_model().objects.filter(pk=user_id, is_superuser=True).exists():
        return True
    roles = set(
        Membership.objects.filter(user_id=user_id, organisation_id=organisation_id).values_list(
            "role", flat=True
        )
    )
    return bool(roles & ADMIN_ROLES)


def gateway_json(g: Gateway, now: Any = None) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "organisation_id": g.organisation_id,
        "key_id": g.key_id,
        "state": g.state,
        "online": services.is_online(g, now),
        "last_seen_at": g.last_seen_at.isoformat() if g.last_seen_at else None,
        "version": g.version,
        "hostname": g.hostname,
        "queue_depth": g.queue_depth,
        "failures": g.failures,
        "disk_free_bytes": g.disk_free_bytes,
        "status": g.last_status,
        "enrolled_at": g.enrolled_at.isoformat() if g.enrolled_at else None,
    }


def command_json(c: Command) -> dict[str, Any]:
    return {
        "id": c.id,
        "gateway_id": c.gateway_id,
        "kind": c.kind,
        "args": c.args,
        "state": c.state,
        "created_at": c.created_at.isoformat(),
        "delivered_at": c.delivered_at.isoformat() if c.delivered_at else None,
        "acked_at": c.acked_at.isoformat() if c.acked_at else None,
        "result": c.result,
    }


@endpoint(("GET", "POST"))
def gateways(request: HttpRequest) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    if request.method == "POST":
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise VetpacsError(Errors.BAD_REQUEST, 'send {"name": "..."}')
        organisation_id = body.get("organisation_id", principal.primary_organisation_id)
        if not isinstance(organisation_id, int):
            raise VetpacsError(Errors.BAD_REQUEST, "organisation_id must be an integer")
        actor = _admin(request, organisation_id)
        gateway, code = services.register_gateway(
            organisation_id=organisation_id, name=body["name"], actor=actor
        )
        return JsonResponse({"gateway": gateway_json(gateway), "enrolment_code": code}, status=201)
    services.sweep_offline()
    now = timezone.now()
    rows = services.visible_gateways(principal.organisation_ids).order_by("organisation_id", "name")
    return JsonResponse(
        {
            "gateways": [gateway_json(g, now) for g in rows],
            "counts": services.gateway_counts(principal.organisation_ids),
        }
    )


@endpoint(("GET",))
def gateway_detail(request: HttpRequest, gateway_id: int) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    gateway = services.get_gateway(principal.organisation_ids, gateway_id)
    return JsonResponse(gateway_json(gateway))


@endpoint(("GET", "POST"))
def gateway_commands(request: HttpRequest, gateway_id: int) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    gateway = services.get_gateway(principal.organisation_ids, gateway_id)
    if request.method == "POST":
        actor = _admin(request, gateway.organisation_id)
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            raise VetpacsError(Errors.BAD_REQUEST, 'send {"kind": "...", "args": {...}}')
        command = services.queue_command(
            gateway=gateway, kind=body["kind"], args=body.get("args") or {}, actor=actor
        )
        return JsonResponse(command_json(command), status=201)
    rows = gateway.commands.order_by("-id")[:100]
    return JsonResponse({"commands": [command_json(c) for c in rows]})


@endpoint(("POST",))
def gateway_enrolment_code(request: HttpRequest, gateway_id: int) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    gateway = services.get_gateway(principal.organisation_ids, gateway_id)
    actor = _admin(request, gateway.organisation_id)
    return JsonResponse(
        {"enrolment_code": services.new_enrolment_code(gateway=gateway, actor=actor)}, status=201
    )


@endpoint(("POST",))
def gateway_revoke(request: HttpRequest, gateway_id: int) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    gateway = services.get_gateway(principal.organisation_ids, gateway_id)
    actor = _admin(request, gateway.organisation_id)
    services.revoke_gateway(gateway=gateway, actor=actor)
    return HttpResponse(status=204)


urlpatterns = [
    path("enrol", enrol, name="devices-enrol"),
    path("heartbeat", heartbeat, name="devices-heartbeat"),
    path("records", records, name="devices-records"),
    path("gateways", gateways, name="devices-gateways"),
    path("gateways/<int:gateway_id>", gateway_detail, name="devices-gateway"),
    path("gateways/<int:gateway_id>/commands", gateway_commands, name="devices-gateway-commands"),
    path("gateways/<int:gateway_id>/enrolment-code", gateway_enrolment_code, name="devices-gateway-code"),
    path("gateways/<int:gateway_id>/revoke", gateway_revoke, name="devices-gateway-revoke"),
]
