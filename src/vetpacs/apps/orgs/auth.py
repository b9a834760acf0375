"""Who is calling an HTTP surface (DICOMweb, uploads): a bearer token, a signed request or a session."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from vetpacs.apps.appkeys import services as appkeys
from vetpacs.apps.orgs.services import Principal, authenticate_token, principal_for_user
from vetpacs.core.errors import Errors, VetpacsError


def principal_from_request(request: HttpRequest) -> Principal:
    header = request.headers.get("Authorization", "")
    if header:
        if appkeys.is_signed(request):  # an application key's HMAC-signed request (docs/api-signing.md)
            return appkeys.authenticate_signed(request)
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise VetpacsError(
                Errors.UNAUTHENTICATED,
                "use 'Authorization: Bearer <token>' or a signed request (VP1-HMAC-SHA256)",
            )
        principal = authenticate_token(raw.strip())
        if principal is None:
            raise VetpacsError(Errors.INVALID_TOKEN)
        return principal
    principal = principal_for_user(getattr(request, "user", None))
    if principal is None:
        raise VetpacsError(Errors.UNAUTHENTICATED)
    return principal


def require_csrf(request: HttpRequest, what: str) -> None:
    """A session (browser) writes only with its CSRF token, like any form post; bearer tokens need none."""
    if CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {}) is not None:
        raise VetpacsError(Errors.FORBIDDEN, f"CSRF check failed for a session-authenticated {what}")


def has_permission(user_id: int | None, organisation_id: int, code: str) -> bool:
    """Whether a user holds a permission (accounts' catalogue, e.g. "audit.view") in an organisation:
    accounts.services.has_permission (built-in and custom roles, chains, disabled memberships)."""
    if user_id is None:
        return False
    # Imported here: accounts.services imports orgs, and orgs.auth is imported by every HTTP surface.
    from vetpacs.apps.accounts import services as accounts  # noqa: PLC0415

    return bool(accounts.has_permission(user_id=user_id, organisation_id=organisation_id, code=code))


def problem_response(exc: VetpacsError) -> HttpResponse:
    """An RFC 9457 problem+json answer for a refused HTTP call, with the challenge a 401 needs."""
    body = {
        "type": f"urn:vetpacs:error:{exc.code}",
        "title": exc.error.message,
        "status": exc.http_status,
        "detail": exc.detail,
    }
    resp = HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status=exc.http_status,
        content_type="application/problem+json; charset=utf-8",
    )
    if exc.http_status == 401:
        resp["WWW-Authenticate"] = 'Bearer realm="vetpacs"'
    return resp
