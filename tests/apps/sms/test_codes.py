"""Verification codes: single use, expiring, hashed at rest, rate-limited per phone and IP, audited."""

from __future__ import annotations

import datetime as dt

import pytest

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.sms import services
from vetpacs.apps.sms.models import SmsCode
from vetpacs.apps.sms.providers import ConsoleProvider
from vetpacs.core.errors import VetpacsError

pytestmark = pytest.mark.django_db
PHONE = "13812345678"


@pytest.fixture(autouse=True)
def console(settings):
    settings.VETPACS_SMS = {**settings.VETPACS_SMS, "provider": "console"}
    ConsoleProvider.outbox.clear()


def last_code() -> str:
    return ConsoleProvider.outbox[-1].code


@pytest.mark.requirement("R-6.2.7d")
def test_a_code_works_once():
    services.issue_code(phone=PHONE, purpose="phone_verification", ip="10.0.0.1")
    code = last_code()
    services.check_code(phone=PHONE, purpose="phone_verification", code=code)
    with pytest.raises(VetpacsError) as caught:
        services.check_code(phone=PHONE, purpose="phone_verification", code=code)
    assert caught.value.code == "sms_code_invalid"


def test_the_code_and_phone_are_not_stored_in_plain_text():
    services.issue_code(phone=PHONE, purpose="password_reset")
    row = SmsCode.objects.get()
    assert last_code() not in row.code_hash and PHONE not in row.phone_hash
    event = AuditEvent.objects.get(action="sms.code_sent")
    assert event.detail["phone"] == "138****5678"


def test_an_expired_code_is_refused():
    services.issue_code(phone=PHONE, purpose="password_reset")
    SmsCode.objects.update(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(VetpacsError):
        services.check_code(phone=PHONE, purpose="password_reset", code=last_code())


def test_a_code_for_another_purpose_is_refused():
    services.issue_code(phone=PHONE, purpose="password_reset")
    with pytest.raises(VetpacsError):
        services.check_code(phone=PHONE, purpose="phone_verification", code=last_code())


def test_five_wrong_guesses_spend_the_code():
    services.issue_code(phone=PHONE, purpose="login")
    code = last_code()
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(services.MAX_ATTEMPTS):
        with pytest.raises(VetpacsError):
            services.check_code(phone=PHONE, purpose="login", code=wrong)
    with pytest.raises(VetpacsError):
        services.check_code(phone=PHONE, purpose="login", code=code)
    assert AuditEvent.objects.filter(action="sms.code_rejected").count() == services.MAX_ATTEMPTS + 1


@pytest.mark.requirement("R-6.2.7d")
def test_a_second_code_within_a_minute_is_refused_per_phone():
    services.issue_code(phone=PHONE, purpose="login", ip="10.0.0.1")
    with pytest.raises(VetpacsError) as caught:
        services.issue_code(phone="+86 138-1234-5678", purpose="login", ip="10.0.0.2")
    assert caught.value.code == "sms_rate_limited"
    assert len(ConsoleProvider.outbox) == 1
    assert AuditEvent.objects.filter(action="sms.rate_limited", result="denied").exists()


def test_the_hourly_limit_per_phone():
    for _ in range(services.PHONE_PER_HOUR):
        services.issue_code(phone=PHONE, purpose="login")
        # every earlier code older than the one-minute interval, still within the hour
        SmsCode.objects.all().update(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2))
    with pytest.raises(VetpacsError, match="hourly"):
        services.issue_code(phone=PHONE, purpose="login")


@pytest.mark.requirement("R-6.2.7d")
def test_many_phones_from_one_ip_are_limited(monkeypatch):
    monkeypatch.setattr(services, "IP_PER_HOUR", 3)
    for i in range(3):
        services.issue_code(phone=f"1391234567{i}", purpose="login", ip="203.0.113.9")
    with pytest.raises(VetpacsError, match="address"):
        services.issue_code(phone="13912345679", purpose="login", ip="203.0.113.9")
    services.issue_code(phone="13912345679", purpose="login", ip="203.0.113.10")


def test_a_malformed_phone_number_is_named_masked():
    with pytest.raises(VetpacsError, match="手机号"):
        services.issue_code(phone="12ab", purpose="login")


def test_the_sweep_removes_only_codes_older_than_every_limit_window():
    services.issue_code(phone=PHONE, purpose="login")
    services.issue_code(phone="13912345678", purpose="login")
    SmsCode.objects.filter(pk=SmsCode.objects.order_by("id").first().pk).update(
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    )
    assert services.sweep_codes() == 1
    assert SmsCode.objects.count() == 1
