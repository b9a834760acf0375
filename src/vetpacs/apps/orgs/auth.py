"""Who is calling an HTTP surface (DICOMweb, uploads): a bearer token or a logged-in session."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from vetpacs.apps.orgs.services import Principal, authenticate_token, principal_for_user
from vetpacs.core.errors import Errors, VetpacsError


def principal_from_request(request: HttpRequest) -> Principal:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise VetpacsError(Errors.UNAUTHENTICATED, "use 'Authorization: Bearer <token>'")
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
