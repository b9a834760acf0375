"""The permission catalogue and built-in roles as pure data (no database), R-7.3.2.1a."""

import pytest

from vetpacs.apps.accounts import workflow

ISSUE_ROLES = {
    "platform_admin", "org_admin", "radiologist", "senior_radiologist", "technician", "referring_vet",
    "front_desk", "auditor", "operator", "system_admin", "security_admin", "audit_admin",
}  # fmt: skip


@pytest.mark.requirement("R-7.3.2.1a")
def test_every_built_in_role_exists_and_uses_only_catalogued_permissions():
    assert set(workflow.BUILTIN_ROLES) == ISSUE_ROLES
    for role in workflow.BUILTIN_ROLES.values():
        assert role.permissions <= workflow.PERMISSIONS.keys(), role.code
        assert role.zh and role.en


def test_a_role_made_from_an_unknown_permission_is_refused_at_definition():
    with pytest.raises(ValueError, match="unknown permissions"):
        workflow._perms("study.view", "study.teleport")


@pytest.mark.requirement("R-6.2.6.3")
def test_administrator_roles_are_the_ones_that_must_use_mfa():
    admins = {code for code in workflow.BUILTIN_ROLES if workflow.is_administrator(code)}
    assert admins == {"platform_admin", "org_admin", "system_admin", "security_admin", "audit_admin"}
    assert not workflow.is_administrator("radiologist")
    assert not workflow.is_administrator("custom:3")


@pytest.mark.requirement("R-7.3.2.1a")
def test_system_security_and_audit_administration_are_separate_duties():
    sysadmin, secadmin, auditadmin = (
        workflow.BUILTIN_ROLES[c] for c in ("system_admin", "security_admin", "audit_admin")
    )
    assert "system.configure" in sysadmin.permissions and "audit.view" not in sysadmin.permissions
    assert "security.manage" in secadmin.permissions and "system.configure" not in secadmin.permissions
    assert "audit.view" in auditadmin.permissions
    assert not auditadmin.permissions & {
        "system.configure",
        "security.manage",
        "member.manage",
        "role.manage",
    }
    assert workflow.separation_conflict({"system_admin"}, "audit_admin") == {"system_admin", "audit_admin"}
    assert workflow.separation_conflict({"security_admin"}, "system_admin")
    assert workflow.separation_conflict({"radiologist"}, "audit_admin") is None


def test_only_a_senior_radiologist_may_review_reports():
    holders = {c for c, r in workflow.BUILTIN_ROLES.items() if "report.review" in r.permissions}
    assert holders == {"senior_radiologist"}


def test_front_desk_sees_owners_in_full_but_a_radiologist_does_not():
    assert "patient.view_sensitive" in workflow.role_permissions("front_desk")
    assert "patient.view_sensitive" not in workflow.role_permissions("radiologist")


@pytest.mark.parametrize(
    ("name", "perms", "code"),
    [
        ("", {"study.view"}, "role_name_missing"),
        ("机构管理员", {"study.view"}, "role_name_builtin"),
        ("阅片助理", {"study.view", "study.fly"}, "permission_unknown"),
        ("阅片助理", {"study.view", "org.manage"}, "permission_platform_only"),
        ("阅片助理", set(), "role_empty"),
    ],
)
def test_a_custom_role_that_breaks_a_rule_is_refused_with_a_message(name, perms, code):
    problems = workflow.custom_role_problems(name, perms)
    assert code in [p.code for p in problems]
    assert all(p.zh and p.en for p in problems)


def test_a_custom_role_from_the_catalogue_is_accepted():
    assert workflow.custom_role_problems("阅片助理 Reading assistant", {"study.view", "report.view"}) == []


def test_custom_role_codes_round_trip():
    assert workflow.custom_role_id(workflow.custom_role_code(42)) == 42
    assert workflow.custom_role_id("org_admin") is None
    assert workflow.custom_role_id("custom:x") is None


@pytest.mark.requirement("R-7.3.2.2a")
def test_lock_and_block_thresholds():
    assert not workflow.should_lock_account(4, 5)
    assert workflow.should_lock_account(5, 5)
    assert workflow.should_block_ip(20, 1, 20)
    assert workflow.should_block_ip(10, 3, 20)  # spraying: fewer failures spread over accounts
    assert not workflow.should_block_ip(10, 2, 20)


@pytest.mark.requirement("R-7.3.2.1e")
def test_dormant_and_old_password_rules():
    assert workflow.is_dormant(91, 90) and not workflow.is_dormant(3, 90)
    assert workflow.password_is_old(90, 90) and not workflow.password_is_old(89.9, 90)
    assert not workflow.password_is_old(10_000, 0)  # 0 turns the reminder off
