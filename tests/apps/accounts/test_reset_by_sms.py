"""Password reset by SMS code, end to end through the pages with the console provider: request a
code, reset, the old password refused, the code not usable twice, limits per phone (R-7.3.2.1d,
R-6.2.7d)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.apps.accounts.conftest import PASSWORD, login
from vetpacs.apps.accounts.models import AccountProfile
from vetpacs.apps.accounts.views import RESET_PHONE
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.sms.providers import ConsoleProvider

pytestmark = pytest.mark.django_db

PHONE = "+8613800138000"
NEW = "Lan9#Shan-Qiu"
IP = "10.9.8.7"


@pytest.fixture(autouse=True)
def outbox():
    ConsoleProvider.outbox.clear()
    yield ConsoleProvider.outbox
    ConsoleProvider.outbox.clear()


@pytest.fixture
def li(make_user, clinic):
    user = make_user("li", clinic)
    AccountProfile.objects.update_or_create(user=user, defaults={"phone": PHONE, "phone_verified": True})
    return user


def _request_code(client: Client, phone: str = "13800138000"):
    return client.post("/accounts/password/reset/sms/", {"phone": phone}, REMOTE_ADDR=IP)


def _reset(client: Client, code: str, password: str = NEW):
    return client.post(
        "/accounts/password/reset/sms/confirm/",
        {"code": code, "password1": password, "password2": password},
        REMOTE_ADDR=IP,
    )


@pytest.mark.requirement("R-7.3.2.1d")
@pytest.mark.requirement("R-6.2.7d")
def test_reset_by_sms_code_then_the_old_password_and_the_used_code_are_refused(li, outbox):
    client = Client()
    page = client.get("/login/")
    assert "/accounts/password/reset/sms/" in page.content.decode()  # the login page offers it
    sent = _request_code(client)  # typed without +86: the account's number is found all the same
    assert sent.status_code == 302 and sent["Location"] == "/accounts/password/reset/sms/confirm/"
    [sms] = outbox
    assert sms.purpose == "password_reset" and sms.phone == "13800138000"
    confirm = client.get(sent["Location"])
    assert "138****8000" in confirm.content.decode()

    done = _reset(client, sms.code)
    assert done.status_code == 302 and done["Location"] == "/login/"
    li.refresh_from_db()
    assert li.check_password(NEW)
    assert login(Client(), "li", PASSWORD, ip=IP).status_code == 200  # the old password: refused
    assert login(Client(), "li", NEW, ip=IP).status_code == 302
    event = AuditEvent.objects.get(action="password.reset")
    assert event.user_id == li.pk and event.ip == IP and event.detail == {"by": "sms_code"}

    # The same code a second time (another browser that learnt it): refused, password unchanged.
    other = Client()
    session = other.session  # at step 2 for the same number (asking again now is rate-limited)
    session[RESET_PHONE] = PHONE
    session.save()
    again = _reset(other, sms.code, "Other7%Passw0rd")
    assert again.status_code == 400 and "验证码错误、已使用或已过期" in again.content.decode()
    li.refresh_from_db()
    assert li.check_password(NEW)


@pytest.mark.requirement("R-7.3.2.1d")
def test_a_weak_or_previous_password_is_refused_and_the_code_stays_usable(li, outbox):
    client = Client()
    _request_code(client)
    [sms] = outbox
    weak = _reset(client, sms.code, "password")
    assert weak.status_code == 400 and "The password must contain a digit." in weak.content.decode()
    previous = _reset(client, sms.code, PASSWORD)  # the current one: the history rule
    assert previous.status_code == 400
    assert _reset(client, sms.code).status_code == 302  # the code was not spent by the refusals


@pytest.mark.requirement("R-6.2.7d")
def test_codes_are_limited_per_phone_and_wrong_guesses_spend_the_code(li, outbox):
    client = Client()
    assert _request_code(client).status_code == 302
    too_soon = _request_code(client)
    assert too_soon.status_code == 429 and "wait a minute" in too_soon.content.decode()
    assert len(outbox) == 1
    [sms] = outbox
    wrong = "000000" if sms.code != "000000" else "111111"
    for _ in range(5):
        assert _reset(client, wrong).status_code == 400
    # Five wrong guesses spent it: even the right code no longer works.
    assert _reset(client, sms.code).status_code == 400
    li.refresh_from_db()
    assert li.check_password(PASSWORD)


def test_an_unknown_number_gets_the_same_answer_and_no_sms(db, outbox):
    client = Client()
    answer = _request_code(client, "13900000000")
    assert answer.status_code == 302 and outbox == []
    assert AuditEvent.objects.filter(action="password.reset_requested", result="unknown").exists()
    assert _reset(client, "123456").status_code == 400


def test_a_reset_ends_a_lock_from_failed_logins(li, outbox, settings):
    for _ in range(settings.VETPACS_LOCKOUT_FAILURES):
        login(Client(), "li", "wrong-Passw0rd!", ip=IP)
    assert AccountProfile.objects.get(user=li).locked_until is not None
    client = Client()
    _request_code(client)
    assert _reset(client, outbox[0].code).status_code == 302
    assert login(Client(), "li", NEW, ip=IP).status_code == 302
