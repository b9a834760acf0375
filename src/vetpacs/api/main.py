"""The NinjaAPI instance: authentication, the problem+json error translator, and routers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.security import APIKeyHeader, HttpBearer

from vetpacs.apps.appkeys import services as appkeys
from vetpacs.apps.orgs.services import Principal, authenticate_token, principal_for_user
from vetpacs.core.errors import VetpacsError


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = authenticate_token(token)
        if principal:
            request.principal = principal  # type: ignore[attr-defined]
        return principal


class SessionPrincipal(APIKeyHeader):
    """Django session (browser); Ninja's CSRF check applies to unsafe methods."""

    param_name = "X-Session"

    def __call__(self, request: HttpRequest) -> Principal | None:
        principal = principal_for_user(getattr(request, "user", None))
        if principal:
            request.principal = principal  # type: ignore[attr-defined]
        return principal

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        return None


class SignedRequest(APIKeyHeader):
    """An application key's HMAC-signed request (docs/api-signing.md); errors answer 401/403 problem+json."""

    param_name = "Authorization"

    def __call__(self, request: HttpRequest) -> Principal | None:
        if not appkeys.is_signed(request):
            return None
        principal = appkeys.authenticate_signed(request)
        request.principal = principal  # type: ignore[attr-defined]
        return principal

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        return None


api = NinjaAPI(
    title="vetpacs API",
    version="1",
    description="兽医影像云平台 JSON API (T/CVMA 275-2025). DICOMweb is at /dicomweb.",
    auth=[SignedRequest(), BearerToken(), SessionPrincipal()],
    urls_namespace="api",
)


@api.exception_handler(VetpacsError)
def problem(request: HttpRequest, exc: VetpacsError) -> HttpResponse:
    # RFC 9457 problem details
    return api.create_response(
        request,
        {
            "type": f"urn:vetpacs:error:{exc.code}",
            "title": exc.error.message,
            "status": exc.http_status,
            "detail": exc.detail,
        },
        status=exc.http_status,
    )


from vetpacs.api import studies  # noqa: E402, F401  (registers routes)
from vetpacs.apps.appkeys.api import router as appkeys_router  # noqa: E402

api.add_router("/appkeys", appkeys_router)
from vetpacs.apps.esign.api import router as esign_router  # noqa: E402

api.add_router("/real-name", esign_router)
