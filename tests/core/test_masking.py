"""Masked personal data as a screen shows it to someone without the right to see it in full."""

import pytest

from vetpacs.core.masking import mask_email, mask_id_number, mask_name, mask_phone


@pytest.mark.requirement("R-7.3.4.4c")
@pytest.mark.parametrize(
    ("value", "masked"),
    [("13812345678", "138****5678"), ("+8613812345678", "+86*******5678"), ("5678", "****"), ("", "")],
)
def test_phone_numbers_keep_only_the_first_three_and_last_four(value, masked):
    assert mask_phone(value) == masked


@pytest.mark.requirement("R-7.3.4.4c")
def test_id_numbers_hide_the_birth_date():
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert "19491231" not in mask_id_number("11010519491231002X")


@pytest.mark.parametrize(
    ("value", "masked"), [("张伟", "张*"), ("欧阳娜娜", "欧***"), ("Smith", "S****"), ("李", "李*")]
)
def test_names_keep_the_first_character(value, masked):
    assert mask_name(value) == masked


def test_email_keeps_the_domain():
    assert mask_email("zhang@example.cn") == "z****@example.cn"
