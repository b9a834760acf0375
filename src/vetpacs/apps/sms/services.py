"""SMS use cases: send a code through the configured provider."""

from __future__ import annotations

from django.conf import settings

from vetpacs.apps.sms.providers import ConsoleProvider, SmsMessage, SmsProvider


def provider() -> SmsProvider:
    """The provider named by settings.VETPACS_SMS["provider"] ("console" unless configured)."""
    name = settings.VETPACS_SMS.get("provider", "console")
    if name == "console":
        return ConsoleProvider()
    raise ValueError(f"unknown SMS provider {name!r}")


def send_sms(*, phone: str, purpose: str, code: str) -> None:
    """Send one verification code (purpose: login, phone_verification, password_reset)."""
    provider().send(SmsMessage(phone=phone, purpose=purpose, code=code))
