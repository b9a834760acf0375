"""Who is calling a DICOMweb route: a bearer token or a logged-in session; scoped to their organisations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from vetpacs.apps.orgs.auth import principal_from_request, require_csrf
from vetpacs.core.errors import VetpacsError
from vetpacs.dicomweb.responses import error_response


def dicomweb_view(methods: tuple[str, ...]) -> Callable[..., Any]:
    """Authenticate, restrict methods, translate VetpacsError once (to a PS3.18 status).

    A route that answers GET answers HEAD too (RFC 9110 9.3.2): the same status and headers, no body.
    Handlers see request.method == "HEAD": a retrieval audits nothing (no data leaves) and a single
    file reads none of its blob (dicomweb/ranges.py)."""
    allowed = (*methods, "HEAD") if "GET" in methods else methods

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # bearer-token clients; a session POST still needs the CSRF token (checked below)
        @functools.wraps(fn)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                resp = error_response(405, f"{request.method} is not allowed here")
                resp["Allow"] = ", ".join(allowed)
                return resp
            try:
                principal = principal_from_request(request)
                if request.method == "POST" and not request.headers.get("Authorization"):
                    require_csrf(request, "POST")
                request.principal = principal  # type: ignore[attr-defined]
                resp = fn(request, *args, **kwargs)
            except VetpacsError as exc:
                resp = error_response(exc.http_status, exc.detail, code=exc.code)
                if exc.http_status == 401:
                    resp["WWW-Authenticate"] = 'Bearer realm="vetpacs"'
            return _without_body(resp) if request.method == "HEAD" else resp

        return view

    return decorate


def _without_body(resp: HttpResponse | StreamingHttpResponse) -> HttpResponse:
    """The answer to a HEAD: the GET's status and headers, and no body. A body built in full gives its
    length; a streamed one is never read (its blobs are never opened) and keeps the length it had."""
    if isinstance(resp, StreamingHttpResponse):
        bare = HttpResponse(status=resp.status_code)
        for name, value in resp.items():
            bare[name] = value
        # The unread stream is closed with the answer, by the server at the end of the request: closing
        # it here would signal the request finished while it is still running.
        bare._resource_closers.extend(resp._resource_closers)
        return bare
    if not resp.has_header("Content-Length"):
        resp["Content-Length"] = str(len(resp.content))
    resp.content = b""
    return resp
