"""Password policy (R-7.3.2.1d): bilingual rules, history of 5, current password to change, age."""

from datetime import timedelta

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.apps.accounts.conftest import PASSWORD, login
from vetpacs.apps.accounts import services
from vetpacs.apps.accounts import workflow as w
from vetpacs.apps.accounts.models import AccountProfile, PasswordHistory

pytestmark = pytest.mark.django_db

# (password, the message a user reads); the account is "zhangwei".
BAD = [
    ("Ab1!xyz", w.TOO_SHORT),
    ("Abcdefg!", w.NO_DIGIT),
    ("abcdef1!x", w.NO_UPPER),
    ("ABCDEF1!X", w.NO_LOWER),
    ("Abcdef15x", w.NO_SPECIAL),
    ("Zhang!Pet5x", w.CONTAINS_NAME),
    ("xANGw!Pet5", w.CONTAINS_NAME),
    ("Good!Pass123", w.DIGIT_SEQUENCE),
    ("Good!Pass876", w.DIGIT_SEQUENCE),
]
EXPECTED_TEXT = {
    w.TOO_SHORT: "密码至少需要 8 个字符。 The password must be at least 8 characters long.",
    w.CONTAINS_NAME: "密码不能包含账号名或其中的一部分。"
    " The password must not contain the account name or part of it.",
    w.DIGIT_SEQUENCE: "密码不能包含连续数字（如 123 或 987）。"
    " The password must not contain consecutive digits such as 123 or 987.",
}


@pytest.mark.requirement("R-7.3.2.1d")
@pytest.mark.parametrize(("password", "problem"), BAD)
def test_each_bad_password_is_refused_with_its_message(make_user, clinic, password, problem):
    user = make_user("zhangwei", clinic)
    with pytest.raises(ValidationError) as exc:
        validate_password(password, user)
    assert problem.message() in exc.value.messages
    assert problem.code in [e.code for e in exc.value.error_list]
    if problem in EXPECTED_TEXT:  # the words a user reads, spelled out once per kind
        assert EXPECTED_TEXT[problem] in exc.value.messages


@pytest.mark.requirement("R-7.3.2.1d")
def test_none_of_the_last_five_passwords_may_be_chosen_again(make_user, clinic):
    user = make_user("li", clinic, password="First!Pw0rd")
    chosen = ["First!Pw0rd"]
    for word in ("Second!Pw2x", "Third!Pw3xx", "Fourth!Pw4x", "Fifth!Pw5xx"):
        services.change_password(user=user, current=chosen[-1], new=word)
        chosen.append(word)
    assert PasswordHistory.objects.filter(user=user).count() == 5
    for old in chosen:
        with pytest.raises(services.AccountError) as exc:
            services.change_password(user=user, current=chosen[-1], new=old)
        assert "不能使用最近 5 次用过的密码" in str(exc.value) and "last 5 passwords" in str(exc.value)
    # A sixth change pushes the first one out of the history: it may be used again.
    services.change_password(user=user, current=chosen[-1], new="Sixth!Pw6xx")
    services.change_password(user=user, current="Sixth!Pw6xx", new="First!Pw0rd")
    user.refresh_from_db()
    assert user.check_password("First!Pw0rd")


@pytest.mark.requirement("R-7.3.2.1d")
def test_changing_the_password_needs_the_current_one(client, make_user, clinic):
    user = make_user("li", clinic)
    with pytest.raises(services.AccountError) as exc:
        services.change_password(user=user, current="Wrong!Pw9x", new="Other!Pw8xy")
    assert exc.value.code == "password_current_wrong"
    login(client, "li")
    resp = client.post(
        "/accounts/password/change/",
        {"oldpassword": "Wrong!Pw9x", "password1": "Other!Pw8xy", "password2": "Other!Pw8xy"},
    )
    assert resp.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.requirement("R-7.3.2.1d")
def test_a_password_older_than_the_limit_brings_a_reminder(client, make_user, clinic, settings):
    settings.VETPACS_PASSWORD_MAX_AGE_DAYS = 90
    user = make_user("li", clinic)
    AccountProfile.objects.filter(user=user).update(password_changed_at=timezone.now() - timedelta(days=91))
    assert services.password_expired(user)
    login(client, "li")
    text = (
        client.get("/", follow=True).content.decode()
        + client.get("/accounts/password/change/").content.decode()
    )
    assert "您的密码已使用超过 90 天" in text and "more than 90 days old" in text


def test_a_fresh_password_is_not_old(make_user, clinic):
    assert not services.password_expired(make_user("li", clinic))


def test_argon2id_at_owasp_parameters_is_the_hash(make_user, clinic):
    user = make_user("li", clinic)
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
