"""Administrators' pages: members, roles, access review, security events; scoped to the caller's clinic."""

import re

import pytest
from django.test import Client

from tests.apps.accounts.conftest import PASSWORD, login
from vetpacs.apps.accounts import services
from vetpacs.apps.accounts.models import AccountProfile, Role
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.orgs.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(make_user, clinic):
    admin = make_user("boss", clinic, "org_admin")
    client = Client()
    client.force_login(admin)
    client.admin = admin  # type: ignore[attr-defined]
    return client


def test_members_page_is_chinese_first_and_lists_the_clinics_members(
    admin_client, make_user, clinic, other_clinic
):
    make_user("rad", clinic, "radiologist")
    make_user("stranger", other_clinic, "radiologist")
    text = admin_client.get("/accounts/manage/").content.decode()
    assert "成员管理" in text and "Members" in text
    assert "rad" in text and "影像医生 Radiologist" in text
    assert "stranger" not in text


@pytest.mark.requirement("R-7.3.2.1a")
def test_an_admin_creates_an_account_from_the_page(admin_client, clinic):
    resp = admin_client.post(
        "/accounts/manage/",
        {
            "action": "create",
            "org": clinic.pk,
            "username": "newtech",
            "role": "technician",
            "password": "Start!Pw8xy",
        },
    )
    assert resp.status_code == 302
    user = Membership.objects.get(organisation=clinic, user__username="newtech").user
    assert services.must_change_password(user)
    assert AuditEvent.objects.filter(action="account.created", user_id=admin_client.admin.pk).exists()


def test_a_weak_initial_password_is_refused_on_the_page(admin_client, clinic):
    resp = admin_client.post(
        "/accounts/manage/",
        {
            "action": "create",
            "org": clinic.pk,
            "username": "newtech",
            "role": "technician",
            "password": "abc",
        },
    )
    text = resp.content.decode()
    assert resp.status_code == 200 and "密码至少需要 8 个字符" in text
    assert not Membership.objects.filter(user__username="newtech").exists()


@pytest.mark.requirement("R-7.3.2.1a")
def test_an_invitation_link_from_the_page_lets_the_invitee_join(admin_client, clinic):
    text = admin_client.post(
        "/accounts/manage/", {"action": "create", "org": clinic.pk, "username": "guest", "role": "front_desk"}
    ).content.decode()
    link = re.search(r'id="invite-link"[^>]*>(http[^<]+)<', text).group(1)
    path = link.split("testserver", 1)[1]
    invitee = Client()
    assert "guest" in invitee.get(path).content.decode()
    resp = invitee.post(path, {"password1": "Join!Us8wxy", "password2": "Join!Us8wxy"})
    assert resp.status_code == 302 and resp["Location"] == "/login/"
    assert login(invitee, "guest", "Join!Us8wxy").status_code == 302
    assert invitee.get(path).status_code == 404  # used once


@pytest.mark.requirement("R-7.3.2.1e")
def test_access_review_disables_or_re_roles_in_one_step(admin_client, make_user, clinic):
    rad = make_user("rad", clinic, "radiologist")
    text = admin_client.get("/accounts/manage/review/").content.decode()
    assert "权限审查" in text and 'data-user="rad"' in text
    admin_client.post(
        "/accounts/manage/review/",
        {"org": clinic.pk, "user": rad.pk, "action": "role", "role": "senior_radiologist"},
    )
    assert services.has_permission(rad, "report.review", clinic)
    admin_client.post("/accounts/manage/review/", {"org": clinic.pk, "user": rad.pk, "action": "disable"})
    rad.refresh_from_db()
    assert not rad.is_active
    assert [e.action for e in AuditEvent.objects.filter(target=f"user:{rad.pk}").order_by("id")][-2:] == [
        "account.role_changed",
        "account.disabled",
    ]


@pytest.mark.requirement("R-7.3.2.1e")
def test_access_review_flags_a_member_who_never_logged_in_for_months(admin_client, make_user, clinic):
    from datetime import timedelta

    from django.utils import timezone

    make_user("ghost", clinic, "technician", date_joined=timezone.now() - timedelta(days=120))
    text = admin_client.get("/accounts/manage/review/").content.decode()
    row = re.search(r'<tr data-user="ghost">.*?</tr>', text, re.S).group(0)
    assert "休眠 Dormant" in row and "从未 Never" in row


def test_an_admin_cannot_act_on_another_clinics_member(admin_client, make_user, clinic, other_clinic):
    stranger = make_user("stranger", other_clinic, "radiologist")
    resp = admin_client.post(
        "/accounts/manage/review/", {"org": clinic.pk, "user": stranger.pk, "action": "disable"}
    )
    assert resp.status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active
    assert admin_client.get(f"/accounts/manage/?org={other_clinic.pk}").status_code == 200
    assert "stranger" not in admin_client.get(f"/accounts/manage/?org={other_clinic.pk}").content.decode()


def test_a_radiologist_may_not_open_the_admin_pages(make_user, clinic):
    client = Client()
    client.force_login(make_user("rad", clinic, "radiologist"))
    for path in ("/accounts/manage/", "/accounts/manage/roles/", "/accounts/manage/security/"):
        assert client.get(path).status_code == 403, path


def test_anonymous_callers_are_sent_to_login(client, db):
    resp = client.get("/accounts/manage/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/?next=")


@pytest.mark.requirement("R-7.3.2.1a")
def test_custom_role_made_on_the_roles_page(admin_client, clinic):
    resp = admin_client.post(
        "/accounts/manage/roles/",
        {
            "org": clinic.pk,
            "action": "create",
            "name": "阅片助理",
            "permissions": ["study.view", "report.view"],
        },
    )
    assert resp.status_code == 302
    role = Role.objects.get(organisation=clinic)
    assert role.permissions == ["report.view", "study.view"]
    text = admin_client.get("/accounts/manage/").content.decode()
    assert f'value="custom:{role.pk}"' in text  # assignable to members


@pytest.mark.requirement("R-7.3.2.2a")
def test_security_events_page_shows_a_lock_and_unlocks_it(admin_client, make_user, clinic, other_clinic):
    rad = make_user("rad", clinic)
    stranger = make_user("stranger", other_clinic)
    for who in ("rad", "stranger"):
        for _ in range(5):
            login(Client(), who, "Wrong!Pass9x")
    text = admin_client.get("/accounts/manage/security/").content.decode()
    assert "账号已锁定" in text and "rad" in text and "stranger" not in text
    admin_client.post("/accounts/manage/security/", {"org": clinic.pk, "action": "unlock", "user": rad.pk})
    assert login(Client(), "rad", PASSWORD).status_code == 302
    assert not AccountProfile.objects.get(user=rad).locked_until
    # Another clinic's locked member cannot be unlocked from here.
    resp = admin_client.post(
        "/accounts/manage/security/", {"org": clinic.pk, "action": "unlock", "user": stranger.pk}
    )
    assert resp.status_code == 404


def test_org_admin_switches_mfa_for_all_members_on(admin_client, clinic):
    admin_client.post("/accounts/manage/", {"org": clinic.pk, "action": "mfa", "required": "1"})
    clinic.refresh_from_db()
    assert clinic.mfa_required
    assert AuditEvent.objects.filter(action="organisation.mfa_policy_changed").exists()
