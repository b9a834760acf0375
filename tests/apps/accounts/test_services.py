"""Permissions other apps ask for, and the account lifecycle, each change audited (R-7.3.2.1a)."""

import pytest

from tests.apps.accounts.conftest import PASSWORD
from vetpacs.apps.accounts import services
from vetpacs.apps.accounts.models import Invitation
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.apps.orgs.services import (
    authenticate_token,
    create_organisation,
    issue_token,
    principal_for_user,
)

pytestmark = pytest.mark.django_db


def actions(target: str) -> list[str]:
    return list(AuditEvent.objects.filter(target=target).values_list("action", flat=True))


@pytest.mark.requirement("R-7.3.2.1a")
def test_built_in_role_grants_its_permissions_only_in_its_own_organisation(make_user, clinic, other_clinic):
    rad = make_user("rad", clinic, "radiologist")
    assert services.has_permission(rad, "report.sign", clinic)
    assert not services.has_permission(rad, "report.review", clinic)
    assert not services.has_permission(rad, "report.sign", other_clinic)
    # The keyword form other apps use.
    assert services.has_permission(user_id=rad.pk, organisation_id=clinic.pk, code="report.sign")
    assert not services.has_permission(user_id=None, organisation_id=clinic.pk, code="report.sign")


def test_an_unknown_permission_is_a_programming_error(make_user, clinic):
    with pytest.raises(ValueError, match="unknown permission"):
        services.has_permission(make_user("u", clinic), "study.teleport", clinic)


def test_a_chain_role_applies_in_its_member_clinics():
    chain = create_organisation(name="Chain", kind=Organisation.Kind.CHAIN)
    member = create_organisation(name="Member", parent=chain)
    from vetpacs.apps.orgs.services import create_user

    boss = create_user(username="boss", password=PASSWORD, organisation=chain, role="referring_vet")
    assert services.has_permission(boss, "study.view", member)


def test_a_platform_admin_manages_organisations_anywhere(make_user, clinic):
    platform = create_organisation(name="Platform", kind=Organisation.Kind.PLATFORM)
    admin = make_user("root", platform, "platform_admin")
    assert services.has_permission(admin, "org.manage", clinic)
    assert not services.has_permission(admin, "study.view", clinic)


def test_a_token_not_bound_to_a_user_reads_and_sends_images_of_its_clinic_only(clinic, other_clinic):
    principal = authenticate_token(issue_token(organisation=clinic, name="t"))
    assert services.has_permission(principal, "study.upload", clinic)
    assert not services.has_permission(principal, "member.manage", clinic)
    assert not services.has_permission(principal, "study.view", other_clinic)


def test_a_principal_of_a_user_has_that_users_permissions(make_user, clinic):
    user = make_user("fd", clinic, "front_desk")
    principal = principal_for_user(user)
    assert services.has_permission(principal, "share.create", clinic)
    assert not services.has_permission(principal, "report.write", clinic)


@pytest.mark.requirement("R-7.3.2.1a")
@pytest.mark.requirement("R-7.3.2.1b")
@pytest.mark.requirement("R-6.2.7b")
def test_custom_role_grants_exactly_the_permissions_chosen(make_user, clinic):
    admin = make_user("admin", clinic, "org_admin")
    role = services.create_role(
        organisation=clinic, name="阅片助理", permissions={"study.view", "report.view"}, by=admin
    )
    helper = make_user("helper", clinic, "front_desk")
    services.set_role(user=helper, organisation=clinic, role=f"custom:{role.pk}", by=admin)
    assert services.has_permission(helper, "report.view", clinic)
    assert not services.has_permission(helper, "share.create", clinic)
    assert actions(f"role:{role.pk}") == ["role.created"]
    assert "account.role_changed" in actions(f"user:{helper.pk}")
    with pytest.raises(services.AccountError) as exc:
        services.delete_role(role=role, by=admin)
    assert exc.value.code == "role_in_use"


def test_another_clinics_custom_role_cannot_be_assigned(make_user, clinic, other_clinic):
    admin = make_user("admin", clinic, "org_admin")
    foreign = services.create_role(organisation=other_clinic, name="x", permissions={"study.view"}, by=None)
    user = make_user("u", clinic)
    with pytest.raises(services.AccountError) as exc:
        services.set_role(user=user, organisation=clinic, role=f"custom:{foreign.pk}", by=admin)
    assert exc.value.code == "role_unknown"


def test_one_person_cannot_be_system_and_audit_administrator_in_a_chain():
    chain = create_organisation(name="Chain", kind=Organisation.Kind.CHAIN)
    member = create_organisation(name="Member", parent=chain)
    from vetpacs.apps.orgs.services import create_user

    user = create_user(username="ops", password=PASSWORD, organisation=chain, role="system_admin")
    Membership.objects.create(user=user, organisation=member, role="radiologist")
    with pytest.raises(services.AccountError) as exc:
        services.set_role(user=user, organisation=member, role="audit_admin", by=None)
    assert exc.value.code == "separation_of_duties"
    assert "System administrator" in exc.value.en


@pytest.mark.requirement("R-7.3.2.1a")
def test_lifecycle_create_modify_disable_enable_delete_is_audited(make_user, clinic):
    admin = make_user("admin", clinic, "org_admin")
    user = services.create_account(
        organisation=clinic, username="newvet", password="Fresh!Pass7x", role="referring_vet", by=admin
    )
    assert services.must_change_password(user)
    services.modify_account(
        user=user, organisation=clinic, by=admin, email="v@example.cn", phone="+8613800000001"
    )
    services.disable_account(user=user, organisation=clinic, by=admin)
    user.refresh_from_db()
    assert not user.is_active and not services.has_permission(user, "study.view", clinic)
    services.enable_account(user=user, organisation=clinic, by=admin)
    user.refresh_from_db()
    assert user.is_active and services.has_permission(user, "study.view", clinic)
    user_id = user.pk
    services.delete_account(user=user, organisation=clinic, by=admin)
    assert not type(user).objects.filter(pk=user_id).exists()
    assert actions(f"user:{user_id}") == [
        "account.created",
        "account.modified",
        "account.disabled",
        "account.activated",
        "account.deleted",
    ]
    assert AuditEvent.objects.filter(action="account.created", user_id=admin.pk).exists()


def test_disabling_in_one_organisation_keeps_the_other(make_user, clinic, other_clinic):
    user = make_user("both", clinic, "radiologist")
    Membership.objects.create(user=user, organisation=other_clinic, role="radiologist")
    services.disable_account(user=user, organisation=clinic, by=None)
    user.refresh_from_db()
    assert user.is_active
    assert principal_for_user(user).organisation_ids == {other_clinic.pk}


@pytest.mark.requirement("R-7.3.2.1a")
def test_an_invitation_is_used_once_and_activates_the_account(make_user, clinic):
    admin = make_user("admin", clinic, "org_admin")
    invitation, raw = services.invite(organisation=clinic, username="inv", role="technician", by=admin)
    assert Invitation.objects.get().token_hash != raw  # only a hash is kept
    user = services.accept_invitation(raw_token=raw, password="Qz!8wallabY")
    assert user.check_password("Qz!8wallabY")
    assert services.has_permission(user, "study.upload", clinic)
    assert not services.must_change_password(user)  # they chose it themselves
    with pytest.raises(services.AccountError) as exc:
        services.accept_invitation(raw_token=raw, password="Qz!8wallabZ")
    assert exc.value.code == "invitation_invalid"
    assert actions(f"invitation:{invitation.pk}") == ["account.invited"]
    assert actions(f"user:{user.pk}") == ["account.activated"]


def test_an_invitation_refuses_a_weak_password_and_stays_open(make_user, clinic):
    _, raw = services.invite(organisation=clinic, username="inv", role="technician", by=None)
    with pytest.raises(services.AccountError) as exc:
        services.accept_invitation(raw_token=raw, password="inv12345")
    assert "密码必须包含大写字母" in str(exc.value)
    assert services.open_invitation(raw) is not None


def test_platform_admin_role_is_only_given_in_the_platform_organisation(make_user, clinic):
    with pytest.raises(services.AccountError) as exc:
        services.create_account(
            organisation=clinic, username="x", password="Fresh!Pass7x", role="platform_admin", by=None
        )
    assert exc.value.code == "role_platform_only"


@pytest.mark.requirement("R-7.3.2.1e")
def test_access_review_lists_roles_last_login_and_flags_dormant_accounts(make_user, clinic):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    make_user("fresh", clinic, "technician", last_login=now - timedelta(days=2))
    make_user("sleepy", clinic, "front_desk", last_login=now - timedelta(days=200))
    rows = {r.username: r for r in services.access_review(clinic)}
    assert rows["fresh"].role_label == "技师 Technician" and not rows["fresh"].dormant
    assert rows["sleepy"].dormant and rows["sleepy"].last_login is not None
