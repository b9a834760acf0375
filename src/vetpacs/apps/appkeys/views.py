"""The administrators' page for application keys: issue (secret shown once), rotate, revoke."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from vetpacs.apps.accounts import services as accounts
from vetpacs.apps.appkeys import services, workflow
from vetpacs.apps.appkeys.models import AppKey
from vetpacs.apps.orgs.models import Organisation
from vetpacs.core.errors import VetpacsError

PERMISSION = "appkey.manage"


@require_http_methods(["GET", "POST"])
@accounts.require_permission(PERMISSION)
def app_keys(request: HttpRequest) -> HttpResponse:
    org: Organisation = request.organisation  # type: ignore[attr-defined]
    shown: dict[str, str] | None = None  # the one time a secret is on screen
    error = ""
    ip = request.META.get("REMOTE_ADDR")
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "issue":
                key, secret = services.issue_key(
                    organisation=org,
                    name=request.POST.get("name", ""),
                    scopes=request.POST.getlist("scopes"),
                    user_id=request.user.pk,
                    ip=ip,
                )
                shown = {"key_id": key.key_id, "secret": secret}
            elif action in ("rotate", "revoke"):
                key = AppKey.objects.filter(organisation=org, key_id=request.POST.get("key_id", "")).first()
                if key is None:
                    raise Http404
                if action == "rotate":
                    shown = {
                        "key_id": key.key_id,
                        "secret": services.rotate_key(key=key, user_id=request.user.pk, ip=ip),
                    }
                else:
                    services.revoke_key(key=key, user_id=request.user.pk, ip=ip)
        except VetpacsError as exc:
            error = exc.detail
    return render(
        request,
        "appkeys/keys.html",
        {
            "org": org,
            "orgs": accounts.organisations_with(request.user, PERMISSION),
            "keys": services.keys_of({org.pk}),
            "scopes": workflow.SCOPES.items(),
            "shown": shown,
            "error": error,
        },
    )
