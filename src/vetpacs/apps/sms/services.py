"""SMS use cases: send a code through the configured provider; issue and check verification codes.

`send_sms` is what allauth's phone login calls (accounts adapter); `issue_code` / `check_code` are
the platform's own single-use codes for phone verification and password reset, rate-limited per
phone and per IP, hashed at rest, expiring, and audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.sms.models import SmsCode
from vetpacs.apps.sms.providers import (
    AliyunProvider,
    ConsoleProvider,
    SmsMessage,
    SmsProvider,
    SmsSendError,
    TencentProvider,
)
from vetpacs.core import crypto
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.core.masking import mask_phone

PURPOSES = ("login", "phone_verification", "password_reset")
CODE_DIGITS = 6
CODE_TTL_SECONDS = 300
MAX_ATTEMPTS = 5  # wrong guesses before a code is spent
# Rate limits (R-6.2.7d): counted from the rows themselves, so every platform process agrees.
PHONE_MIN_INTERVAL_SECONDS = 60
PHONE_PER_HOUR = 5
PHONE_PER_DAY = 10
IP_PER_HOUR = 30
# Rows older than the longest limit window are of no use; one issue in this many sweeps them.
KEEP_CODES_DAYS = 2
SWEEP_ONE_IN = 100
_PHONE = re.compile(r"^\+?\d{6,15}$")


def provider() -> SmsProvider:
    """The provider named by settings.VETPACS_SMS["provider"] ("console" unless configured)."""
    config = settings.VETPACS_SMS
    name = config.get("provider", "console")
    if name == "console":
        return ConsoleProvider()
    if name == "aliyun":
        return AliyunProvider(config)
    if name == "tencent":
        return TencentProvider(config)
    raise ValueError(f"unknown SMS provider {name!r}; use console, aliyun or tencent")


def send_sms(*, phone: str, purpose: str, code: str) -> None:
    """Send one verification code (purpose: login, phone_verification, password_reset).

    Raises VetpacsError(SMS_SEND_FAILED) naming the provider's refusal.
    """
    try:
        provider().send(SmsMessage(phone=normalise_phone(phone), purpose=purpose, code=code))
    except SmsSendError as exc:
        raise VetpacsError(Errors.SMS_SEND_FAILED, str(exc)) from exc


def normalise_phone(phone: str) -> str:
    """Digits (and a leading +) only; a mainland number keeps its 11 digits without +86."""
    cleaned = re.sub(r"[\s\-()]", "", phone)
    if cleaned.startswith("+86") and len(cleaned) == 14:
        cleaned = cleaned[3:]
    if not _PHONE.match(cleaned):
        raise VetpacsError(
            Errors.BAD_REQUEST, f"手机号格式不正确 / {mask_phone(phone)} is not a phone number"
        )
    return cleaned


def _key(purpose: str) -> bytes:
    return crypto.derive_key(bytes(settings.VETPACS_MASTER_KEY), f"sms:{purpose}")


def _phone_hash(phone: str) -> str:
    return hmac.new(_key("phone"), phone.encode(), hashlib.sha256).hexdigest()


def _code_hash(phone: str, purpose: str, code: str) -> str:
    return hmac.new(_key("code"), f"{phone}|{purpose}|{code}".encode(), hashlib.sha256).hexdigest()


def _check_rate(phone_hash: str, ip: str | None, now: dt.datetime) -> None:
    recent = SmsCode.objects.filter(phone_hash=phone_hash)
    if recent.filter(created_at__gt=now - dt.timedelta(seconds=PHONE_MIN_INTERVAL_SECONDS)).exists():
        raise VetpacsError(
            Errors.SMS_RATE_LIMITED, f"请 {PHONE_MIN_INTERVAL_SECONDS} 秒后再试 / wait a minute"
        )
    if recent.filter(created_at__gt=now - dt.timedelta(hours=1)).count() >= PHONE_PER_HOUR:
        raise VetpacsError(
            Errors.SMS_RATE_LIMITED, "该手机号本小时验证码已达上限 / hourly limit for this phone"
        )
    if recent.filter(created_at__gt=now - dt.timedelta(days=1)).count() >= PHONE_PER_DAY:
        raise VetpacsError(Errors.SMS_RATE_LIMITED, "该手机号今日验证码已达上限 / daily limit for this phone")
    if (
        ip
        and SmsCode.objects.filter(ip=ip, created_at__gt=now - dt.timedelta(hours=1)).count() >= IP_PER_HOUR
    ):
        raise VetpacsError(
            Errors.SMS_RATE_LIMITED, "该地址请求过多 / too many codes requested from this address"
        )


def issue_code(*, phone: str, purpose: str, ip: str | None = None, user_id: int | None = None) -> None:
    """Make a single-use code, keep its hash, send it; refused (429) past the rate limits."""
    if purpose not in PURPOSES:
        raise VetpacsError(Errors.BAD_REQUEST, f"unknown purpose {purpose!r}; use one of {PURPOSES}")
    phone = normalise_phone(phone)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = timezone.now()
    phone_hash = _phone_hash(phone)
    try:
        _check_rate(phone_hash, ip, now)
    except VetpacsError:
        audit.record(
            "sms.rate_limited",
            user_id=user_id,
            ip=ip,
            result="denied",
            detail={"phone": mask_phone(phone), "purpose": purpose},
        )
        raise
    with transaction.atomic():
        row = SmsCode.objects.create(
            phone_hash=phone_hash,
            purpose=purpose,
            code_hash=_code_hash(phone, purpose, code),
            ip=ip,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=CODE_TTL_SECONDS),
        )
    # Sent after the row commits: the row counts against the limits even if the provider fails.
    try:
        send_sms(phone=phone, purpose=purpose, code=code)
    except VetpacsError:
        audit.record(
            "sms.send_failed", user_id=user_id, ip=ip, result="failed", detail={"phone": mask_phone(phone)}
        )
        raise
    SmsCode.objects.filter(pk=row.pk).update(sent=True)
    if secrets.randbelow(SWEEP_ONE_IN) == 0:
        sweep_codes(now=now)
    audit.record(
        "sms.code_sent",
        user_id=user_id,
        ip=ip,
        target=f"sms:{row.pk}",
        detail={"phone": mask_phone(phone), "purpose": purpose, "provider": settings.VETPACS_SMS["provider"]},
    )


def check_code(
    *, phone: str, purpose: str, code: str, ip: str | None = None, user_id: int | None = None
) -> None:
    """Accept the newest live code once; wrong, used, expired or over-guessed codes raise SMS_CODE_INVALID."""
    phone = normalise_phone(phone)
    now = timezone.now()
    row = (
        SmsCode.objects.filter(phone_hash=_phone_hash(phone), purpose=purpose, used_at__isnull=True)
        .order_by("-created_at")
        .first()
    )
    ok = (
        row is not None
        and row.expires_at > now
        and row.attempts < MAX_ATTEMPTS
        and hmac.compare_digest(row.code_hash, _code_hash(phone, purpose, code.strip()))
    )
    if ok:
        assert row is not None
        # Single use even under concurrency: only one request can set used_at.
        ok = bool(SmsCode.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now))
    elif row is not None:
        SmsCode.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
    audit.record(
        "sms.code_verified" if ok else "sms.code_rejected",
        user_id=user_id,
        ip=ip,
        result="ok" if ok else "failed",
        detail={"phone": mask_phone(phone), "purpose": purpose},
    )
    if not ok:
        raise VetpacsError(
            Errors.SMS_CODE_INVALID, "验证码错误、已使用或已过期 / the code is wrong, used or expired"
        )


def sweep_codes(*, now: dt.datetime | None = None) -> int:
    """Remove codes older than every rate-limit window (their hashes serve nothing any more)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=KEEP_CODES_DAYS)
    deleted, _ = SmsCode.objects.filter(created_at__lt=cutoff).delete()
    return deleted
