"""Identifiers: DICOM UIDs under the vetpacs root, random tokens."""

from __future__ import annotations

import re
import secrets
import uuid

# A UID derived from a UUID (PS3.5 B.2): no registered root is needed.
_UUID_ROOT = "2.25."
# PS3.5 9.1: components of digits separated by dots, no leading zero, at most 64 characters.
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_UID_LENGTH = 64


def new_uid() -> str:
    return _UUID_ROOT + str(uuid.uuid4().int)


def is_valid_uid(value: str) -> bool:
    return bool(value) and len(value) <= MAX_UID_LENGTH and bool(_UID_RE.match(value))


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
