"""Resident ID numbers per GB 11643-1999 (ISO 7064 MOD 11-2 check character), without a database."""

import datetime as dt

import pytest

from vetpacs.apps.esign.workflow import WEIGHTS, id_number_problem

TODAY = dt.date(2026, 12, 4)


def test_the_weights_are_those_printed_in_the_standard():
    assert WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.mark.requirement("R-6.2.7a")
@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # GB 11643-1999 example (Beijing Chaoyang, 1949-12-31, check X)
        "440524188001010014",  # GB 11643-1999 example (Guangdong Shantou, 1880-01-01)
        "11010519491231002x",  # a lower-case x is accepted and normalised
        " 110101199003074514 ",
    ],
)
def test_valid_numbers_pass(number):
    assert id_number_problem(number, today=TODAY) is None


@pytest.mark.requirement("R-6.2.7a")
@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "校验码应为 X"),  # one wrong check character
        ("11010519491231002", "18位"),  # too short (the old 15-digit form is not accepted)
        ("1101051949123100AX", "18位"),
        ("110105194902300026", "不存在"),  # 30 February
        ("110105203001010018", "不合理"),  # born in the future
        ("440524188001010015", "校验码应为 4"),
    ],
)
def test_invalid_numbers_name_the_problem(number, why):
    problem = id_number_problem(number, today=TODAY)
    assert problem is not None and why in problem
