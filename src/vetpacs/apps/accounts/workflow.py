"""Password rules of R-7.3.2.1d as pure functions: each returns the problems it finds (no I/O)."""

from __future__ import annotations

import string
from dataclasses import dataclass

MIN_LENGTH = 8
# A run of this many characters of the account name may not appear in the password.
NAME_RUN = 3
# This many consecutive digits, ascending or descending (123, 987), are refused.
DIGIT_RUN = 3
SPECIALS = set(string.punctuation) | {" "}


@dataclass(frozen=True)
class Problem:
    code: str
    zh: str
    en: str

    def message(self) -> str:
        return f"{self.zh} {self.en}"


TOO_SHORT = Problem(
    "password_too_short",
    f"密码至少需要 {MIN_LENGTH} 个字符。",
    f"The password must be at least {MIN_LENGTH} characters long.",
)
NO_DIGIT = Problem("password_no_digit", "密码必须包含数字。", "The password must contain a digit.")
NO_UPPER = Problem(
    "password_no_upper", "密码必须包含大写字母。", "The password must contain an upper-case letter."
)
NO_LOWER = Problem(
    "password_no_lower", "密码必须包含小写字母。", "The password must contain a lower-case letter."
)
NO_SPECIAL = Problem(
    "password_no_special",
    "密码必须包含特殊字符。",
    "The password must contain a special character such as !@#$%.",
)
CONTAINS_NAME = Problem(
    "password_contains_name",
    "密码不能包含账号名或其中的一部分。",
    "The password must not contain the account name or part of it.",
)
DIGIT_SEQUENCE = Problem(
    "password_digit_sequence",
    "密码不能包含连续数字（如 123 或 987）。",
    "The password must not contain consecutive digits such as 123 or 987.",
)


def composition_problems(password: str) -> list[Problem]:
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(TOO_SHORT)
    if not any(c.isdigit() for c in password):
        problems.append(NO_DIGIT)
    if not any(c.isupper() for c in password):
        problems.append(NO_UPPER)
    if not any(c.islower() for c in password):
        problems.append(NO_LOWER)
    if not any(c in SPECIALS for c in password):
        problems.append(NO_SPECIAL)
    return problems


def contains_account_name(password: str, names: list[str]) -> bool:
    """True if any run of NAME_RUN+ characters of any account name appears, case-insensitively."""
    low = password.casefold()
    for raw in filter(None, names):
        name = raw.casefold()
        if len(name) < NAME_RUN:
            if name in low:
                return True
            continue
        for i in range(len(name) - NAME_RUN + 1):
            if name[i : i + NAME_RUN] in low:
                return True
    return False


def has_digit_sequence(password: str) -> bool:
    for i in range(len(password) - DIGIT_RUN + 1):
        chunk = password[i : i + DIGIT_RUN]
        if not chunk.isdigit() or not chunk.isascii():
            continue
        steps = {int(b) - int(a) for a, b in zip(chunk, chunk[1:], strict=False)}
        if steps in ({1}, {-1}):
            return True
    return False


def password_problems(password: str, account_names: list[str] | None = None) -> list[Problem]:
    problems = composition_problems(password)
    if contains_account_name(password, account_names or []):
        problems.append(CONTAINS_NAME)
    if has_digit_sequence(password):
        problems.append(DIGIT_SEQUENCE)
    return problems
