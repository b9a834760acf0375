"""The password policy of R-7.3.2.1d, refused passwords each with the right message."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from vetpacs.apps.accounts import workflow


@pytest.mark.requirement("R-7.3.2.1d")
@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Ab1!xyz", "password_too_short"),
        ("Abcdefg!", "password_no_digit"),
        ("abcdef1!x", "password_no_upper"),
        ("ABCDEF1!X", "password_no_lower"),
        ("Abcdef15x", "password_no_special"),
        ("Zhang!Pet5x", "password_contains_name"),  # account zhangwei: "zha" run
        ("Weiz!Pet5x", "password_contains_name"),  # account zhangwei: "wei" run
        ("Good!Pass123", "password_digit_sequence"),
        ("Good!Pass987", "password_digit_sequence"),
    ],
)
def test_a_weak_password_is_refused_with_the_right_message(password, code):
    problems = workflow.password_problems(password, ["zhangwei"])
    assert code in [p.code for p in problems]


@pytest.mark.parametrize("password", ["Tr0ub4dor&Pet", "Q8!rX2#vLm", "猫咪Aa1!好名字"])
def test_a_strong_password_passes(password):
    assert workflow.password_problems(password, ["zhangwei"]) == []


def test_digits_that_are_not_a_run_are_allowed():
    assert not workflow.has_digit_sequence("Aa!1357x")
    assert not workflow.has_digit_sequence("Aa!1124x")


@pytest.mark.requirement("R-7.3.2.1d")
def test_the_django_validator_gives_chinese_and_english_messages(db):
    from django.contrib.auth import get_user_model

    user = get_user_model()(username="liming", email="li.ming@example.cn")
    with pytest.raises(ValidationError) as exc:
        validate_password("Liming!2026", user)
    text = " ".join(exc.value.messages)
    assert "账号名" in text and "account name" in text
