"""Masking of personal data for screens, logs and audit details (R-7.3.4.5a): 138****5678, 110***********002X.

Pure functions: templates and the API show these unless the caller holds `patient.view_sensitive`.
"""

from __future__ import annotations

MASK = "*"


def mask_phone(phone: str) -> str:
    """Keep the first 3 and last 4 digits of a mobile number: 13812345678 -> 138****5678."""
    phone = phone.strip()
    if len(phone) <= 4:
        return MASK * len(phone)
    if len(phone) < 8:
        return MASK * (len(phone) - 4) + phone[-4:]
    return phone[:3] + MASK * (len(phone) - 7) + phone[-4:]


def mask_id_number(number: str) -> str:
    """Keep the first 3 and last 4 characters of an ID number; the birth date is hidden."""
    number = number.strip()
    if len(number) <= 7:
        return MASK * len(number)
    return number[:3] + MASK * (len(number) - 7) + number[-4:]


def mask_name(name: str) -> str:
    """Keep the first character (a Chinese family name): 张伟 -> 张*, 欧阳娜娜 -> 欧***, Smith -> S****."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + MASK * max(1, len(name) - 1)


def mask_email(email: str) -> str:
    """Keep the first character of the local part and the domain: zhang@example.cn -> z****@example.cn."""
    local, at, domain = email.strip().partition("@")
    if not at:
        return mask_name(local)
    return mask_name(local) + "@" + domain
