"""The gateways page (前置机网关): online/offline and last contact, register, commands. Chinese first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from vetpacs.apps.devices import services
from vetpacs.apps.devices.api import may_manage
from vetpacs.apps.devices.models import Command
from vetpacs.apps.orgs.services import Principal, principal_for_user
from vetpacs.core.errors import VetpacsError

# The buttons on each row: command kind -> its arguments.
_BUTTONS = {
    "retry_all": {},
    "stop": {},
    "resume": {},
}


def _actor(request: HttpRequest) -> services.Actor:
    return services.Actor(
        user_id=request.user.pk,
        label=f"user:{request.user.get_username()}",
        ip=request.META.get("REMOTE_ADDR"),
    )


@login_required
@require_http_methods(["GET", "POST"])
def gateway_list(request: HttpRequest) -> HttpResponse:
    principal = principal_for_user(request.user)
    if principal is None or not principal.organisation_ids:
        raise Http404
    manageable = [o for o in sorted(principal.organisation_ids) if may_manage(request.user.pk, o)]
    context: dict[str, object] = {"nav": "devices", "error": "", "new_code": None}
    if request.method == "POST":
        organisation_id = manageable[0] if manageable else None
        if organisation_id is None:
            context["error"] = "只有机构管理员可以注册网关 Only an organisation admin may register gateways"
        else:
            try:
                gateway, code = services.register_gateway(
                    organisation_id=organisation_id, name=request.POST.get("name", ""), actor=_actor(request)
                )
                context["new_code"] = {"gateway": gateway, "code": code}
            except VetpacsError as exc:
                context["error"] = exc.detail
    return _render_list(request, principal, manageable, context)


def _render_list(
    request: HttpRequest, principal: Principal, manageable: list[int], context: dict[str, object]
) -> HttpResponse:
    services.sweep_offline()
    now = timezone.now()
    rows = services.visible_gateways(principal.organisation_ids).order_by("organisation__name", "name")
    context["rows"] = [
        {"g": g, "online": services.is_online(g, now), "manage": g.organisation_id in manageable}
        for g in rows
    ]
    context["counts"] = services.gateway_counts(principal.organisation_ids)
    context["can_register"] = bool(manageable)
    context["many_orgs"] = len(principal.organisation_ids) > 1  # a chain sees its clinics' gateways
    context["ttl_hours"] = services.enrolment_ttl_hours()
    context["commands"] = (
        Command.objects.filter(gateway__organisation_id__in=principal.organisation_ids)
        .select_related("gateway")
        .order_by("-id")[:20]
    )
    return render(request, "devices/gateways.html", context)


@login_required
@require_http_methods(["POST"])
def gateway_command(request: HttpRequest, gateway_id: int) -> HttpResponse:
    principal = principal_for_user(request.user)
    if principal is None:
        raise Http404
    try:
        gateway = services.get_gateway(principal.organisation_ids, gateway_id)
    except VetpacsError:
        raise Http404 from None
    if not may_manage(request.user.pk, gateway.organisation_id):
        return HttpResponse(
            "只有机构管理员可以操作网关 Only an organisation admin may command gateways", status=403
        )
    kind = request.POST.get("kind", "")
    if kind == "revoke":
        services.revoke_gateway(gateway=gateway, actor=_actor(request))
    elif kind == "new_code":  # re-installing the clinic's PC: a fresh one-time code, shown once
        try:
            code = services.new_enrolment_code(gateway=gateway, actor=_actor(request))
        except VetpacsError as exc:
            return HttpResponse(exc.detail, status=409)
        manageable = [o for o in sorted(principal.organisation_ids) if may_manage(request.user.pk, o)]
        context = {"nav": "devices", "error": "", "new_code": {"gateway": gateway, "code": code}}
        return _render_list(request, principal, manageable, context)
    elif kind in _BUTTONS:
        try:
            services.queue_command(gateway=gateway, kind=kind, args=_BUTTONS[kind], actor=_actor(request))
        except VetpacsError as exc:
            return HttpResponse(exc.detail, status=409)
    else:
        return HttpResponse(f"unknown action {kind!r}", status=400)
    return redirect("devices:list")


app_name = "devices"
urlpatterns = [
    path("", gateway_list, name="list"),
    path("<int:gateway_id>/command", gateway_command, name="command"),
]
