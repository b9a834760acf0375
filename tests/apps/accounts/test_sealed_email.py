"""Staff e-mail addresses are sealed at rest and still find their account for login and for a reset
by e-mail; existing addresses are sealed by a data migration (R-7.3.4.1c)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client

from tests.apps.accounts.conftest import PASSWORD, login
from vetpacs.apps.accounts import services
from vetpacs.apps.accounts.models import AccountProfile, Invitation

EMAIL = "Dr.Li@Hospital.cn"


def _raw_rows(table: str, column: str, value: int) -> bytes:
    """Everything a copy of the database holds in the table's rows for one key, as bytes."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE {column} = %s", [value])  # noqa: S608 - test names
        rows = cursor.fetchall()
    assert rows
    return b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for row in rows for v in row
    )


@pytest.mark.django_db
@pytest.mark.requirement("R-7.3.4.1c")
def test_a_staff_email_is_not_in_the_database_in_clear_yet_logs_in(clinic, admin_user):
    user = services.create_account(
        organisation=clinic, username="li", password=PASSWORD, role="radiologist", by=admin_user, email=EMAIL
    )
    for table, column in (("auth_user", "id"), ("accounts_accountprofile", "user_id")):
        stored = _raw_rows(table, column, user.pk).lower()
        assert b"hospital" not in stored and b"dr.li" not in stored, table
    assert get_user_model().objects.get(pk=user.pk).email == ""
    assert services.email_of(user) == "Dr.Li@hospital.cn"  # Django lower-cases the domain
    assert services.find_user("dr.li@hospital.cn") == user  # case does not matter, as before
    AccountProfile.objects.filter(user=user).update(must_change_password=False)
    assert login(Client(), "DR.LI@hospital.cn").status_code == 302
    assert login(Client(), "nobody@hospital.cn").status_code == 200


@pytest.mark.django_db
@pytest.mark.requirement("R-7.3.4.1c")
def test_whoever_writes_user_email_it_ends_sealed_and_a_change_moves_the_index(clinic, admin_user):
    user = get_user_model().objects.create_user(username="wang", password=PASSWORD, email="wang@a.cn")
    assert user.email == "" and services.email_of(user) == "wang@a.cn"
    user.email = "wang@b.cn"  # the Django admin or allauth writing the field
    user.save()
    assert services.user_by_email("wang@b.cn") == user and services.user_by_email("wang@a.cn") is None
    services.modify_account(user=user, organisation=clinic, by=admin_user, email="wang@c.cn")
    assert services.email_of(user) == "wang@c.cn" and services.user_by_email("wang@b.cn") is None
    assert b"wang@" not in _raw_rows("accounts_accountprofile", "user_id", user.pk)


@pytest.mark.django_db
@pytest.mark.requirement("R-7.3.4.1c")
def test_an_invitation_keeps_the_address_sealed_and_the_account_gets_it(clinic, admin_user):
    invitation, raw = services.invite(
        organisation=clinic, username="zhao", role="technician", by=admin_user, email="zhao@hospital.cn"
    )
    assert b"zhao@" not in _raw_rows("accounts_invitation", "id", invitation.pk)
    assert Invitation.objects.get(pk=invitation.pk).email == "zhao@hospital.cn"
    user = services.accept_invitation(raw_token=raw, password="Mu6!Qing-Shan")
    assert services.user_by_email("zhao@hospital.cn") == user


@pytest.mark.django_db
def test_the_password_policy_still_sees_the_sealed_address(make_user, clinic):
    from vetpacs.apps.accounts.services import AccountError, change_password

    user = make_user("chen", clinic, email="xiaoming.wu@hospital.cn")
    with pytest.raises(AccountError, match="account name"):
        change_password(user=user, current=PASSWORD, new="Xiaoming!42q")


@pytest.mark.django_db
def test_password_reset_by_email_finds_the_account_through_the_index(make_user, clinic):
    user = make_user("chen", clinic, email="chen@hospital.cn")
    assert user.email == ""
    resp = Client().post("/accounts/password/reset/", {"email": "Chen@hospital.cn"})
    assert resp.status_code == 302
    [message] = mail.outbox
    # The reset code itself (an unknown address would get allauth's "no account" mail instead).
    assert message.to == ["chen@hospital.cn"] and "密码重置代码" in message.body


@pytest.mark.django_db(transaction=True)
@pytest.mark.requirement("R-7.3.4.1c")
def test_the_data_migration_seals_existing_addresses():
    from django.db.migrations.executor import MigrationExecutor

    before = [("accounts", "0006_sealed_email_fields")]
    latest = [("accounts", "0008_remove_clear_invitation_email")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(
        username="old-timer", email="Old@Clinic.cn", password="!"
    )
    org = old.get_model("orgs", "Organisation").objects.create(name="Old Clinic")
    old.get_model("accounts", "Invitation").objects.create(
        organisation=org, username="later", email="later@clinic.cn", role="technician",
        token_hash="x" * 64, expires_at="2030-01-01T00:00:00Z",
    )  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.migrate(latest)
    assert get_user_model().objects.get(pk=user.pk).email == ""
    assert services.user_by_email("old@clinic.cn").pk == user.pk
    assert b"clinic.cn" not in _raw_rows("accounts_accountprofile", "user_id", user.pk).lower()
    assert Invitation.objects.get(username="later").email == "later@clinic.cn"
