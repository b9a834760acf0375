"""Request-wide account rules: security headers (CSP, framing), session idle and absolute timeouts,
forced password change, MFA for administrators, password-age reminder (R-6.2.6.1, R-7.3.4.2,
R-6.2.6.3, R-7.3.2.1d)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from vetpacs.apps.accounts import services

# Scripts only from our origin, and inline ones only with this answer's nonce (R-7.3.4.2): an
# injected <script> or on*= handler does not run. Pages keep their behaviour in static files
# (accounts/static/vetpacs/behaviours.js: confirmations, auto-submitting selects, toggles) and give
# their few inline scripts {{ csp_nonce }}. Styles may still be inline (style attributes are
# everywhere; a style cannot run code). OHIF (/viewer/) also compiles WebAssembly codecs and runs web
# workers from blob: URLs, on its own paths only (so does the light viewer at /m/), and keeps
# 'unsafe-inline' there (a nonce would switch it off). No plugins, no foreign frames, forms post
# only to us.
NONCE_BYTES = 16
_NONCE = "{nonce}"
_BASE = {
    "default-src": "'self'",
    "script-src": f"'self' 'nonce-{_NONCE}'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
_VIEWER = {
    "script-src": "'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
    "worker-src": "'self' blob:",
    "connect-src": "'self' data: blob:",
    "media-src": "'self' data: blob:",
}
_RELAXED = {
    "/viewer/": _VIEWER,
    # The light viewer (Cornerstone3D) decodes JPEG-LS with WebAssembly in web workers.
    "/m/": _VIEWER,
    "/api/v1/docs": {"script-src": "'self' 'unsafe-inline' https://cdn.jsdelivr.net",
                     "style-src": "'self' 'unsafe-inline' https://cdn.jsdelivr.net"},
}  # fmt: skip


def content_security_policy(path: str, nonce: str = "") -> str:
    """The policy for a path; `nonce` is the answer's own (new_nonce()), allowed on inline scripts."""
    directives = dict(_BASE)
    for prefix, extra in _RELAXED.items():
        if path.startswith(prefix):
            directives.update(extra)
    if _NONCE in directives["script-src"]:
        source = f"'nonce-{nonce}'" if nonce else ""
        directives["script-src"] = directives["script-src"].replace(f"'nonce-{_NONCE}'", source).strip()
    ancestors = ["'self'", *getattr(settings, "VETPACS_FRAME_ANCESTORS", [])]
    directives["frame-ancestors"] = " ".join(ancestors)
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Template context processor: `{{ csp_nonce }}` for a page's inline <script nonce=...>."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


class SecurityHeadersMiddleware:
    """CSP on every answer, and framing limited to our origin plus a configured allow-list.

    X-Frame-Options cannot name other sites, so with an allow-list (VETPACS_FRAME_ANCESTORS) only
    CSP frame-ancestors speaks; without one X-Frame-Options SAMEORIGIN backs it for old browsers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A new nonce for every answer, so one read from a page cannot be reused on the next.
        nonce = new_nonce()
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path, nonce)
        if getattr(settings, "VETPACS_FRAME_ANCESTORS", []):
            del response["X-Frame-Options"]
            response.xframe_options_exempt = True  # type: ignore[attr-defined]
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


LOGIN_AT = "vetpacs_login_at"
SEEN_AT = "vetpacs_seen_at"
# The last-seen time is written at most this often, so reading pages does not write the session
# on every request; the idle timeout is exact to within this many seconds.
SEEN_RESOLUTION_SECONDS = 30

_API_PREFIXES = ("/api/", "/dicomweb/")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(_API_PREFIXES)


class SessionTimeoutMiddleware:
    """R-7.3.4.2: a session ends after VETPACS_SESSION_IDLE_MINUTES without a request, and in any
    case VETPACS_SESSION_ABSOLUTE_HOURS after login."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            login_at = session.get(LOGIN_AT)
            seen_at = session.get(SEEN_AT)
            if login_at is None or seen_at is None:
                # Every login through Django's login() (allauth's pages, force_login) stamps both
                # clocks (signals.py); a session made without login() is bounded by
                # SESSION_COOKIE_AGE alone.
                return self.get_response(request)
            idle = settings.VETPACS_SESSION_IDLE_MINUTES * 60
            absolute = settings.VETPACS_SESSION_ABSOLUTE_HOURS * 3600
            if now - seen_at > idle or now - login_at > absolute:
                logout(request)
                if _is_api(request):
                    return JsonResponse(
                        {"title": "会话已过期，请重新登录。The session has expired; log in again."},
                        status=401,
                    )
                messages.info(request, "会话已超时，请重新登录。The session timed out; please log in again.")
                return redirect(f"{settings.LOGIN_URL}?next={request.get_full_path()}")
            if now - seen_at >= SEEN_RESOLUTION_SECONDS:
                session[SEEN_AT] = now
        return self.get_response(request)


# Paths a user may reach while the platform insists on a password change or an MFA set-up.
_SETUP_PATHS = (
    "/accounts/2fa/",
    "/accounts/password/",
    "/accounts/logout/",
    "/accounts/login/",
    "/accounts/reauthenticate/",
    "/login/",
    "/logout/",
    "/static/",
    "/favicon.ico",
)
_PASSWORD_PATHS = ("/accounts/password/change/", "/accounts/logout/", "/logout/", "/static/", "/login/")
REMINDED = "vetpacs_password_age_reminded"
# Set by every interactive login (allauth's user_logged_in: the login page, SMS codes, single
# sign-on; the Django admin's own login form is sent there too, platform/urls.py): the session
# then answers to the password and MFA rules below. A session a test makes with force_login() or
# by hand skips them; everything else about it is the same.
MFA_POLICY = "vetpacs_mfa_policy"
# A session that passed every check is trusted by this process for this long: a viewer opening a
# study sends dozens of DICOMweb requests, and each need not ask the database again. A password
# forced or an MFA rule changed elsewhere takes effect within this bound.
POLICY_RECHECK_SECONDS = 60
_POLICY_CACHE_MAX = 4096
_passed: dict[str, float] = {}  # session key -> monotonic time until which it is trusted
_monotonic = time.monotonic


def forget_policy_checks() -> None:
    _passed.clear()


class AccountPolicyMiddleware:
    """Before anything else: a new password for an admin-created account, then a second factor for
    whoever must have one (administrators; everyone in an organisation that requires it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and request.session.get(MFA_POLICY):
            key = f"{request.session.session_key}:{user.pk}"
            now = _monotonic()
            if _passed.get(key, 0) < now:
                blocked = self._redirect(request, user)
                if blocked is not None:
                    return blocked
                if not request.path.startswith(_SETUP_PATHS):
                    if len(_passed) >= _POLICY_CACHE_MAX:
                        _passed.clear()
                    _passed[key] = now + POLICY_RECHECK_SECONDS
        return self.get_response(request)

    def _redirect(self, request: HttpRequest, user: Any) -> HttpResponse | None:
        path = request.path
        state = services.policy_state(user)
        if state.must_change_password:
            if path.startswith(_PASSWORD_PATHS):
                return None
            return self._refuse(
                request,
                reverse("account_change_password"),
                "首次登录请先修改管理员设置的密码。Please change the password an administrator set for you.",
            )
        if path.startswith(_SETUP_PATHS):
            return None
        if services.mfa_required(user, state):
            from allauth.mfa.utils import is_mfa_enabled

            if not is_mfa_enabled(user, types=["totp", "webauthn"]):
                return self._refuse(
                    request,
                    reverse("mfa_activate_totp"),
                    "您的角色须启用双因素认证，请先完成设置。Your role requires two-factor authentication;"
                    " set it up first.",
                )
        if state.password_expired and not request.session.get(REMINDED):
            request.session[REMINDED] = True
            days = settings.VETPACS_PASSWORD_MAX_AGE_DAYS
            messages.warning(
                request,
                f"您的密码已使用超过 {days} 天，请尽快修改。Your password is more than {days} days old;"
                " please change it.",
            )
        return None

    @staticmethod
    def _refuse(request: HttpRequest, to: str, message: str) -> HttpResponse:
        if _is_api(request):
            return JsonResponse({"title": message}, status=403)
        if request.session.get("vetpacs_setup_told") != to:
            request.session["vetpacs_setup_told"] = to
            messages.warning(request, message)
        return redirect(to)


BLOCKED_MESSAGE_ZH = (
    "此网络地址因多次登录失败已被暂时封禁，当前会话与令牌在封禁期间均不可用。请稍后再试或联系管理员。"
)
BLOCKED_MESSAGE_EN = (
    "This address is blocked for a while after many failed logins; sessions and tokens from it are"
    " refused while the block lasts. Try later or ask an administrator."
)
# One audit event per blocked address and process in this many seconds: a browser that keeps polling
# from a blocked address should not write a row per request.
BLOCKED_AUDIT_SECONDS = 60
_blocked_audited: dict[str, float] = {}


class BlockedAddressMiddleware:
    """R-7.3.2.2a: while an address is blocked, requests from it that carry a session or a token are
    refused (403), not only its logins: the intruder's connection is cut. The check is a set lookup
    (services.address_blocked); anonymous requests pass, and the login page says why it refuses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from vetpacs.apps.accounts.adapter import client_ip

        ip = client_ip(request)
        if ip and ip in services._blocked_addresses():  # noqa: SLF001 - the cheap first look
            bearer = bool(request.headers.get("Authorization"))
            user = getattr(request, "user", None)
            signed_in = user is not None and user.is_authenticated
            if (bearer or signed_in) and (block := services.address_blocked(ip)) is not None:
                self._audit(request, ip, user if signed_in else None, bearer, block.until)
                return self._refuse(request, block.until)
        return self.get_response(request)

    @staticmethod
    def _audit(request: HttpRequest, ip: str, user: Any, bearer: bool, until: Any) -> None:
        clock = _monotonic()
        if _blocked_audited.get(ip, 0) > clock:
            return
        if len(_blocked_audited) >= _POLICY_CACHE_MAX:
            _blocked_audited.clear()
        _blocked_audited[ip] = clock + BLOCKED_AUDIT_SECONDS
        from vetpacs.apps.audit import services as audit

        audit.record(
            "ip.request_refused",
            user_id=user.pk if user is not None else None,
            actor=f"user:{user.get_username()}" if user is not None else "token",
            target=f"ip:{ip}",
            ip=ip,
            result="refused",
            detail={"path": request.path[:200], "bearer": bearer, "until": until.isoformat()},
        )

    @staticmethod
    def _refuse(request: HttpRequest, until: Any) -> HttpResponse:
        from django.utils import timezone

        when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M")
        if _is_api(request) or request.headers.get("Authorization"):
            body = {
                "type": "about:blank",
                "title": f"{BLOCKED_MESSAGE_ZH} {BLOCKED_MESSAGE_EN}",
                "status": 403,
                "code": "ip_blocked",
                "blocked_until": until.isoformat(),
            }
            return JsonResponse(body, status=403, content_type="application/problem+json")
        from django.shortcuts import render

        context = {"message_zh": BLOCKED_MESSAGE_ZH, "message_en": BLOCKED_MESSAGE_EN, "until": when}
        return render(request, "accounts/blocked.html", context, status=403)


BUSY_RETRY_AFTER_SECONDS = 1
BUSY_MESSAGE = "登录的人较多，请稍候再试。Many people are logging in; please try again in a moment."


class HashingBusyMiddleware:
    """A login (or password change) that found the argon2 queue full gets 503 with Retry-After,
    the login page and a message, and its thread goes back to serving others (hashers.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from vetpacs.apps.accounts.hashers import HashingBusy

        if not isinstance(exception, HashingBusy):
            return None
        if _is_api(request):
            response: HttpResponse = JsonResponse({"title": BUSY_MESSAGE}, status=503)
        else:
            from django.shortcuts import render

            from vetpacs.apps.accounts.forms import LoginForm

            context = {"form": LoginForm(request=request), "busy": BUSY_MESSAGE}
            response = render(request, "account/login.html", context, status=503)
        response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
        return response


_LOGIN_POSTS = ("/login/", "/accounts/login/")
_BUSY_PAGE = (
    '<!doctype html><html lang="zh-hans"><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>请稍候 Please wait · vetpacs</title>"
    '<p style="font:16px sans-serif;max-width:420px;margin:60px auto" class="errors">'
    f'{BUSY_MESSAGE} <a href="/login/">返回登录 Back to log in</a></p></html>'
)


class LoginAdmissionMiddleware:
    """First in the chain: while this process's argon2 queue is full, a login post is answered 503
    before it costs a session load, a CSRF check or a query, so the queue of waiting requests
    drains fast and other users' pages keep flowing (the full check is in hashers.bounded)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in _LOGIN_POSTS:
            from vetpacs.apps.accounts.hashers import saturated

            if saturated():
                response = HttpResponse(_BUSY_PAGE, status=503, content_type="text/html; charset=utf-8")
                response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
                return response
        return self.get_response(request)
