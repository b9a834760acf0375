"""allauth adapter: bilingual errors, no self sign-up, lockout and IP blocks, phone login and SMS."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.http import HttpRequest

from vetpacs.apps.accounts import services
from vetpacs.apps.accounts.models import AccountProfile, phone_index


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # allauth's reading: REMOTE_ADDR, or X-Forwarded-For behind ALLAUTH_TRUSTED_PROXY_COUNT proxies.
    from allauth.core.internal.httpkit import get_client_ip

    return get_client_ip(request) or None


def _login_of(credentials: dict[str, Any]) -> str:
    return str(credentials.get("username") or credentials.get("email") or credentials.get("phone") or "")


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # The existing login page's wording (tests/browser/test_ohif.py reads it).
        "username_password_mismatch": "用户名或密码错误。Wrong username or password.",
        "email_password_mismatch": "用户名或密码错误。Wrong username or password.",
        "phone_password_mismatch": "用户名或密码错误。Wrong username or password.",
        "too_many_login_attempts": "登录尝试过多，请稍后再试。Too many login attempts; try again later.",
    }

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Accounts are made by administrators or by invitation (R-7.3.2.1a), never by strangers.
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        super().pre_authenticate(request, **credentials)
        try:
            services.check_login_allowed(_login_of(credentials), client_ip(request))
        except services.LoginRefused as exc:
            raise forms.ValidationError(f"{exc.zh} {exc.en}", code=exc.code) from exc

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        super().authentication_failed(request, **credentials)
        services.record_login_failure(_login_of(credentials), client_ip(request))

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """allauth asks for the password again before an authenticator is added. Within the
        reauthentication timeout of the login itself (the forced MFA set-up that follows it) the
        login is that proof; later, adding or removing a factor asks again."""
        required = super().is_reauthentication_required(app=app, **kwargs)
        if required and app == "allauth.mfa":
            import time

            from allauth.account import app_settings
            from allauth.core import context

            from vetpacs.apps.accounts.middleware import LOGIN_AT

            request = context.request
            login_at = request.session.get(LOGIN_AT) if request is not None else None
            if login_at and time.time() - login_at < app_settings.REAUTHENTICATION_TIMEOUT:
                return False
        return required

    # Phone numbers live on AccountProfile (allauth asks the adapter, R-7.3.4.4b).
    def set_phone(self, user: Any, phone: str, verified: bool) -> None:
        AccountProfile.objects.update_or_create(
            user=user, defaults={"phone": phone, "phone_verified": verified}
        )

    def get_phone(self, user: Any) -> tuple[str, bool] | None:
        profile = AccountProfile.objects.filter(user=user).first()
        if profile is None or not profile.phone:
            return None
        return profile.phone, profile.phone_verified

    def set_phone_verified(self, user: Any, phone: str) -> None:
        AccountProfile.objects.filter(user=user, phone_index=phone_index(phone)).update(phone_verified=True)

    def get_user_by_phone(self, phone: str) -> Any | None:
        profile = AccountProfile.objects.filter(phone_index=phone_index(phone)).select_related("user").first()
        return profile.user if profile else None

    def send_verification_code_sms(self, user: Any, phone: str, code: str, **kwargs: Any) -> None:
        from vetpacs.apps.sms.services import send_sms

        # allauth passes `reauthentication` only from the login-by-code flow; else it verifies a phone.
        purpose = "login" if "reauthentication" in kwargs else "phone_verification"
        send_sms(phone=phone, purpose=purpose, code=code)
