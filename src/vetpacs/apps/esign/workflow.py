"""Pure rules: the resident ID number of GB 11643-1999 and what a signature covers (no I/O)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

# GB 11643-1999 4.2 / ISO 7064 MOD 11-2: weight of position i (1-based from the left) is 2^(18-i) mod 11.
WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
CHECK_CHARACTERS = "10X98765432"  # indexed by the weighted sum mod 11
_SHAPE = re.compile(r"^\d{17}[\dX]$")
EARLIEST_BIRTH = dt.date(1850, 1, 1)  # GB 11643 itself gives an example born in 1880


def check_character(first17: str) -> str:
    return CHECK_CHARACTERS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def id_number_problem(value: str, *, today: dt.date | None = None) -> str | None:
    """Why an 18-character resident ID number is not valid, or None when it is.

    Checks the shape (17 digits and a digit or X), the birth date (a real date, not in the future,
    not before 1850) and the check character; the 6-digit address code is not looked up.
    """
    number = normalise_id_number(value)
    if not _SHAPE.match(number):
        return "须为18位：17位数字加1位数字或X / must be 17 digits followed by a digit or X"
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return f"出生日期 {number[6:14]} 不存在 / the birth date {number[6:14]} does not exist"
    if not EARLIEST_BIRTH <= birth <= (today or dt.date.today()):
        return f"出生日期 {number[6:14]} 不合理 / the birth date {number[6:14]} is out of range"
    expected = check_character(number[:17])
    if number[17] != expected:
        return f"校验码应为 {expected} / the check character should be {expected}"
    return None


def normalise_id_number(value: str) -> str:
    return value.strip().replace(" ", "").upper()


def signed_digest(payload: bytes) -> bytes:
    """What is signed: the SHA-256 of the payload, so any size of document is signed the same way."""
    return hashlib.sha256(payload).digest()
