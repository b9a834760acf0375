"""Who is calling a DICOMweb route: a bearer token or a logged-in session; scoped to their organisations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from vetpacs.apps.orgs.auth import principal_from_request, require_csrf
from vetpacs.core.errors import VetpacsError
from vetpacs.dicomweb.responses import error_response


def dicomweb_view(methods: tuple[str, ...]) -> Callable[..., Any]:
    """Authenticate, restrict methods, translate VetpacsError once (to a PS3.18 status)."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # bearer-token clients; a session POST still needs the CSRF token (checked below)
        @functools.wraps(fn)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                resp = error_response(405, f"{request.method} is not allowed here")
                resp["Allow"] = ", ".join(methods)
                return resp
            try:
                principal = principal_from_request(request)
                if request.method == "POST" and not request.headers.get("Authorization"):
                    require_csrf(request, "POST")
                request.principal = principal  # type: ignore[attr-defined]
                return fn(request, *args, **kwargs)
            except VetpacsError as exc:
                resp = error_response(exc.http_status, exc.detail, code=exc.code)
                if exc.http_status == 401:
                    resp["WWW-Authenticate"] = 'Bearer realm="vetpacs"'
                return resp

        return view

    return decorate
