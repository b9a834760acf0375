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


# ---------------------------------------------------------------------------------------------
# Roles and permissions (R-7.3.2.1a, R-7.3.2.1e): a catalogue of permissions, the built-in roles
# made of them, and the rules for custom roles and separation of duties. Pure data and functions.


@dataclass(frozen=True)
class Permission:
    code: str
    zh: str
    en: str
    # Only a platform-level role may hold it; custom roles of a clinic may not.
    platform_only: bool = False


PERMISSIONS: dict[str, Permission] = {
    p.code: p
    for p in (
        Permission("study.view", "查看检查与影像", "View studies and images"),
        Permission("study.upload", "上传检查", "Upload studies"),
        Permission("study.download", "下载影像", "Download images"),
        Permission("study.modify", "修改检查信息", "Modify study information"),
        Permission("study.delete", "删除检查", "Delete studies"),
        Permission("patient.view_sensitive", "查看完整的主人信息", "See owners' personal data in full"),
        Permission("report.view", "查看报告", "View reports"),
        Permission("report.write", "书写报告", "Write reports"),
        Permission("report.sign", "签发报告", "Sign reports"),
        Permission("report.review", "审核报告", "Review reports"),
        Permission("share.create", "分享检查", "Share studies"),
        Permission("consultation.request", "申请会诊", "Request consultations"),
        Permission("consultation.read", "会诊阅片", "Read consultations"),
        Permission("member.view", "查看成员", "View members"),
        Permission("member.manage", "管理成员账号", "Create, invite, disable and delete members"),
        Permission("role.manage", "管理角色与授权", "Define roles and assign them"),
        Permission("security.manage", "处理安全事件与锁定", "Handle security events, lockouts, IP blocks"),
        Permission("appkey.manage", "管理应用密钥", "Manage application keys"),
        Permission("audit.view", "查看审计日志", "View the audit log"),
        Permission("audit.export", "导出审计日志", "Export the audit log"),
        Permission("ops.monitor", "运行监控", "Monitor operations"),
        Permission("system.configure", "系统配置", "Configure the system", platform_only=True),
        Permission("org.manage", "管理机构", "Create and manage organisations", platform_only=True),
    )
}


@dataclass(frozen=True)
class Role:
    code: str
    zh: str
    en: str
    permissions: frozenset[str]
    # Administrators must use a second factor (R-6.2.6.3).
    administrator: bool = False

    @property
    def label(self) -> str:
        return f"{self.zh} {self.en}"


def _perms(*codes: str) -> frozenset[str]:
    unknown = set(codes) - PERMISSIONS.keys()
    if unknown:
        raise ValueError(f"unknown permissions {sorted(unknown)}")
    return frozenset(codes)


_READ = ("study.view", "report.view")
_CLINICAL = (*_READ, "study.download", "patient.view_sensitive", "share.create", "consultation.request")
_READER = (*_READ, "study.download", "report.write", "report.sign", "consultation.read")

BUILTIN_ROLES: dict[str, Role] = {
    r.code: r
    for r in (
        Role(
            "platform_admin",
            "平台管理员",
            "Platform administrator",
            _perms("org.manage", "member.view", "member.manage", "ops.monitor"),
            administrator=True,
        ),
        Role(
            "org_admin",
            "机构管理员",
            "Organisation administrator",
            _perms(
                *_CLINICAL,
                "study.upload",
                "study.modify",
                "study.delete",
                "member.view",
                "member.manage",
                "role.manage",
                "security.manage",
                "appkey.manage",
                "audit.view",
            ),
            administrator=True,
        ),
        Role("radiologist", "影像医生", "Radiologist", _perms(*_READER)),
        Role(
            "senior_radiologist",
            "高级影像医生（审核）",
            "Senior radiologist (reviewer)",
            _perms(*_READER, "report.review"),
        ),
        Role(
            "technician",
            "技师",
            "Technician",
            _perms(*_READ, "study.upload", "study.modify", "study.download"),
        ),
        Role("referring_vet", "临床兽医", "Referring vet", _perms(*_CLINICAL)),
        Role(
            "front_desk",
            "前台",
            "Front desk",
            _perms(*_READ, "patient.view_sensitive", "share.create"),
        ),
        Role("auditor", "审计员", "Auditor", _perms("audit.view", "audit.export")),
        Role("operator", "运维人员", "Operator", _perms("ops.monitor", "study.view")),
        # MLPS level 3 (GB/T 22239-2019 8.1.4.2): system, security and audit administration are
        # separate duties held by different people.
        Role(
            "system_admin",
            "系统管理员",
            "System administrator",
            _perms("system.configure", "ops.monitor", "member.view", "member.manage"),
            administrator=True,
        ),
        Role(
            "security_admin",
            "安全管理员",
            "Security administrator",
            _perms("security.manage", "role.manage", "member.view", "appkey.manage"),
            administrator=True,
        ),
        Role(
            "audit_admin",
            "审计管理员",
            "Audit administrator",
            _perms("audit.view", "audit.export", "member.view"),
            administrator=True,
        ),
    )
}

# A principal holding none of these (a bearer token not bound to a user) may still read and send
# images, as the DICOMweb and upload tokens of the archive always could.
TOKEN_PERMISSIONS = _perms("study.view", "study.upload", "study.download")

# Pairs of roles one person may not hold in the same organisation (separation of duties).
EXCLUSIVE_ROLES: tuple[frozenset[str], ...] = (
    frozenset({"system_admin", "security_admin"}),
    frozenset({"system_admin", "audit_admin"}),
    frozenset({"security_admin", "audit_admin"}),
    frozenset({"platform_admin", "audit_admin"}),
)

CUSTOM_PREFIX = "custom:"


def custom_role_code(role_id: int) -> str:
    return f"{CUSTOM_PREFIX}{role_id}"


def custom_role_id(code: str) -> int | None:
    if not code.startswith(CUSTOM_PREFIX):
        return None
    tail = code[len(CUSTOM_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def role_permissions(code: str) -> frozenset[str]:
    """The permissions of a built-in role (custom roles are resolved from the database)."""
    role = BUILTIN_ROLES.get(code)
    return role.permissions if role else frozenset()


def is_administrator(code: str) -> bool:
    role = BUILTIN_ROLES.get(code)
    return bool(role and role.administrator)


@dataclass(frozen=True)
class RoleProblem:
    code: str
    zh: str
    en: str

    def message(self) -> str:
        return f"{self.zh} {self.en}"


def custom_role_problems(name: str, permissions: set[str]) -> list[RoleProblem]:
    """Why a custom role cannot be made from these permissions (empty if it can)."""
    problems = []
    if not name.strip():
        problems.append(RoleProblem("role_name_missing", "请填写角色名称。", "Give the role a name."))
    if name.strip() and any(name.strip() in (r.zh, r.en, r.code) for r in BUILTIN_ROLES.values()):
        problems.append(
            RoleProblem("role_name_builtin", "不能与内置角色同名。", "A built-in role already has this name.")
        )
    unknown = permissions - PERMISSIONS.keys()
    if unknown:
        problems.append(
            RoleProblem(
                "permission_unknown",
                f"未知权限：{', '.join(sorted(unknown))}。",
                f"Unknown permissions: {', '.join(sorted(unknown))}.",
            )
        )
    reserved = {p for p in permissions if p in PERMISSIONS and PERMISSIONS[p].platform_only}
    if reserved:
        problems.append(
            RoleProblem(
                "permission_platform_only",
                f"机构自定义角色不能包含平台权限：{', '.join(sorted(reserved))}。",
                f"A clinic's role cannot hold platform permissions: {', '.join(sorted(reserved))}.",
            )
        )
    if not permissions:
        problems.append(RoleProblem("role_empty", "请至少选择一项权限。", "Choose at least one permission."))
    return problems


def separation_conflict(held: set[str], new: str) -> frozenset[str] | None:
    """The exclusive pair that holding `new` beside `held` would break, if any."""
    for pair in EXCLUSIVE_ROLES:
        if new in pair and (pair - {new}) & held:
            return pair
    return None


# ---------------------------------------------------------------------------------------------
# Lockout (R-7.3.2.2a) and password age (R-7.3.2.1d): pure decisions over counts and times.


def should_lock_account(failures_in_window: int, threshold: int) -> bool:
    return failures_in_window >= threshold


def should_block_ip(failures_in_window: int, distinct_accounts: int, threshold: int) -> bool:
    """Block an address whose failures are many, or spread across several accounts (spraying)."""
    return failures_in_window >= threshold or (
        distinct_accounts >= 3 and failures_in_window >= threshold // 2
    )


def password_is_old(age_days: float, max_age_days: int) -> bool:
    return max_age_days > 0 and age_days >= max_age_days


def is_dormant(days_since_last_seen: float, dormant_after_days: int) -> bool:
    """Last seen = last login, or creation for one who never logged in; flagged in the access review."""
    return days_since_last_seen >= dormant_after_days
