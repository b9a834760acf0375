"""Staff phone numbers are sealed at rest and still find their account for login (R-7.3.4.1c)."""

from __future__ import annotations

import pytest
from django.db import connection

from vetpacs.apps.accounts.models import AccountProfile, phone_index
from vetpacs.apps.accounts.services import find_user

PHONE = "+8613812345678"


@pytest.mark.requirement("R-7.3.4.1c")
def test_a_staff_phone_is_not_stored_in_clear_yet_finds_its_account(make_user, clinic):
    user = make_user("wang", clinic)
    AccountProfile.objects.update_or_create(user=user, defaults={"phone": PHONE, "phone_verified": True})
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_accountprofile WHERE user_id = %s", [user.pk])
        row = cursor.fetchone()
    stored = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row)
    assert b"13812345678" not in stored
    assert AccountProfile.objects.get(phone_index=phone_index(PHONE)).user == user
    assert AccountProfile.objects.get(user=user).phone == PHONE
    assert find_user(PHONE) == user
