"""Account use cases: permissions, lifecycle (create, invite, activate, modify, disable, delete),
custom roles, lockout and IP blocks, password history (R-7.3.2.1a/d/e, R-7.3.2.2a, R-6.2.6.3)."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from vetpacs.apps.accounts import workflow
from vetpacs.apps.accounts.models import (
    AccountProfile,
    Invitation,
    IpBlock,
    LoginFailure,
    PasswordHistory,
    Role,
    SecurityEvent,
    email_index,
    phone_index,
)
from vetpacs.apps.audit import services as audit
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.apps.orgs.services import Principal
from vetpacs.core.errors import VetpacsError
from vetpacs.core.ids import new_token
from vetpacs.core.masking import mask_phone

PASSWORD_HISTORY_SIZE = 5
INVITATION_TTL_HOURS = 72
# Failed logins are kept this long at least (a day of history for an administrator's questions).
FAILURE_KEEP_SECONDS = 24 * 3600


class AccountError(Exception):
    """A refused account operation; the message is bilingual and shown to the user as it is."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} {en}")
        self.code = code
        self.zh = zh
        self.en = en


class LoginRefused(AccountError):
    """A login refused before the password is checked: a locked account or a blocked address."""


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _actor(user: Any) -> str:
    return f"user:{user.get_username()}" if user is not None else "system"


def _uid(user: Any) -> int | None:
    return user.pk if user is not None else None


# ----------------------------------------------------------------------------------- profiles


def profile_of(user: Any) -> AccountProfile:
    profile, _ = AccountProfile.objects.get_or_create(user=user)
    return profile


def find_user(login: str) -> Any | None:
    """The user a login string names: username, e-mail or phone (as the login form accepts)."""
    login = (login or "").strip()
    if not login:
        return None
    user_model = get_user_model()
    user = user_model.objects.filter(username=login).first()
    if user is None and "@" in login:
        user = user_by_email(login)
    if user is None:
        profile = AccountProfile.objects.filter(phone_index=phone_index(login)).select_related("user").first()
        user = profile.user if profile else None
    return user


def user_by_email(email: str, *, active_only: bool = False) -> Any | None:
    """The account whose (sealed) e-mail this is, through the blind index (case-insensitive)."""
    rows = AccountProfile.objects.filter(email_index=email_index(email)).select_related("user")
    if active_only:
        rows = rows.filter(user__is_active=True)
    profile = rows.order_by("user_id").first()
    return profile.user if profile else None


def email_of(user: Any) -> str:
    """A user's e-mail address, opened from the sealed column ("" when none)."""
    profile = AccountProfile.objects.filter(user_id=user.pk).first() if user is not None else None
    return (profile.email if profile else None) or ""


# ------------------------------------------------------------------------------ permissions


def _organisation_id(organisation: Organisation | int | None) -> int | None:
    if organisation is None or isinstance(organisation, int):
        return organisation
    return organisation.pk


def _memberships(user_id: int) -> list[Membership]:
    return list(Membership.objects.filter(user_id=user_id, is_active=True).select_related("organisation"))


def role_permissions(code: str, organisation_id: int) -> frozenset[str]:
    """Permissions of a built-in role, or of a custom role of that organisation."""
    role_id = workflow.custom_role_id(code)
    if role_id is None:
        return workflow.role_permissions(code)
    role = Role.objects.filter(pk=role_id, organisation_id=organisation_id).first()
    return frozenset(role.permissions) if role else frozenset()


def permissions_in(user_or_principal: Any, organisation: Organisation | int | None) -> frozenset[str]:
    """Everything the caller may do in an organisation.

    A role held in a chain applies in its member clinics; a platform administrator's permissions
    apply in every organisation; a token not bound to a user has TOKEN_PERMISSIONS in its own.
    """
    org_id = _organisation_id(organisation)
    if isinstance(user_or_principal, Principal):
        if user_or_principal.user_id is None:
            if org_id in user_or_principal.organisation_ids:
                return workflow.TOKEN_PERMISSIONS
            return frozenset()
        user = get_user_model().objects.filter(pk=user_or_principal.user_id).first()
    else:
        user = user_or_principal
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(workflow.PERMISSIONS)
    parent_id = None
    if org_id is not None:
        parent_id = Organisation.objects.filter(pk=org_id).values_list("parent_id", flat=True).first()
    granted: set[str] = set()
    for m in _memberships(user.pk):
        platform = m.organisation.kind == Organisation.Kind.PLATFORM
        if m.organisation_id == org_id or (parent_id and m.organisation_id == parent_id) or platform:
            granted |= role_permissions(m.role, m.organisation_id)
    return frozenset(granted)


def has_permission(
    user_or_principal: Any = None,
    perm: str = "",
    organisation: Organisation | int | None = None,
    *,
    user_id: int | None = None,
    organisation_id: int | None = None,
    code: str = "",
) -> bool:
    """May this user (or principal) do `perm` in `organisation`? Other apps call this, either as
    has_permission(user_or_principal, "study.view", org) or with user_id=, organisation_id=, code=."""
    perm = perm or code
    if organisation is None:
        organisation = organisation_id
    if user_or_principal is None:
        if user_id is None:
            return False
        user_or_principal = get_user_model().objects.filter(pk=user_id).first()
    if perm not in workflow.PERMISSIONS:
        raise ValueError(f"unknown permission {perm!r}")
    return perm in permissions_in(user_or_principal, organisation)


def organisations_with(user: Any, perm: str) -> list[Organisation]:
    """The organisations in which the user holds `perm` directly (for pages that choose one)."""
    if not getattr(user, "is_authenticated", False):
        return []
    seen: dict[int, Organisation] = {}
    for m in _memberships(user.pk):
        if perm in role_permissions(m.role, m.organisation_id) or user.is_superuser:
            seen[m.organisation_id] = m.organisation
    return sorted(seen.values(), key=lambda o: o.pk)


def require_permission(perm: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A page decorator: anonymous -> login; the permission held in no organisation -> 403.

    The organisation is the `org_id` URL argument when the route has one (404 for one the user
    cannot see, like every other clinic-owned object), else the first organisation where the user
    holds the permission. The view finds it as `request.organisation`.
    """
    if perm not in workflow.PERMISSIONS:
        raise ValueError(f"unknown permission {perm!r}")

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            from django.contrib.auth.views import redirect_to_login
            from django.http import Http404

            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            allowed = organisations_with(request.user, perm)
            if "org_id" in kwargs:
                match = [o for o in allowed if o.pk == kwargs["org_id"]]
                if not match:
                    raise Http404
                request.organisation = match[0]  # type: ignore[attr-defined]
            elif allowed:
                chosen = request.POST.get("org") or request.GET.get("org")
                pick = [o for o in allowed if str(o.pk) == chosen] if chosen else []
                request.organisation = (pick or allowed)[0]  # type: ignore[attr-defined]
            else:
                raise PermissionDenied(perm)
            return view(request, *args, **kwargs)

        wrapped.required_permission = perm  # type: ignore[attr-defined]
        return wrapped

    return decorate


# ------------------------------------------------------------------------------ MFA policy


def administrator_roles(user: Any) -> list[str]:
    return [m.role for m in _memberships(user.pk) if workflow.is_administrator(m.role)]


@dataclass(frozen=True)
class PolicyState:
    must_change_password: bool
    mfa_exempt: bool
    password_expired: bool


def policy_state(user: Any, now: datetime | None = None) -> PolicyState:
    """What the request-wide rules need to know about a user, in one query."""
    now = now or timezone.now()
    row = (
        AccountProfile.objects.filter(user_id=user.pk)
        .values_list("must_change_password", "mfa_exempt_reason", "password_changed_at")
        .first()
    )
    must, exempt, changed = row or (False, "", None)
    age = (now - (changed or user.date_joined)).total_seconds() / 86400
    return PolicyState(
        must_change_password=must,
        mfa_exempt=bool(exempt),
        password_expired=workflow.password_is_old(age, _setting("VETPACS_PASSWORD_MAX_AGE_DAYS", 90)),
    )


def mfa_required(user: Any, state: PolicyState | None = None) -> bool:
    """R-6.2.6.3: administrators always; everyone in an organisation that requires it."""
    if not getattr(user, "is_authenticated", False):
        return False
    if (state or policy_state(user)).mfa_exempt:
        return False
    if user.is_superuser or administrator_roles(user):
        return True
    return Membership.objects.filter(user=user, is_active=True, organisation__mfa_required=True).exists()


def exempt_from_mfa(*, user: Any, reason: str, by: Any = None) -> None:
    """Record an explicit exception (the published demo account); audited, shown in the access review."""
    with transaction.atomic():
        profile = profile_of(user)
        if profile.mfa_exempt_reason == reason:
            return
        profile.mfa_exempt_reason = reason
        profile.save(update_fields=["mfa_exempt_reason"])
        audit.record(
            "account.mfa_exempted",
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
            detail={"reason": reason},
        )


def set_organisation_mfa(*, organisation: Organisation, required: bool, by: Any) -> None:
    with transaction.atomic():
        Organisation.objects.filter(pk=organisation.pk).update(mfa_required=required)
        organisation.mfa_required = required
        audit.record(
            "organisation.mfa_policy_changed",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"org:{organisation.pk}",
            detail={"mfa_required": required},
        )


# ------------------------------------------------------------------------------- lifecycle


def _check_role(organisation: Organisation, role: str) -> None:
    if role in workflow.BUILTIN_ROLES:
        if role == "platform_admin" and organisation.kind != Organisation.Kind.PLATFORM:
            raise AccountError(
                "role_platform_only",
                "平台管理员只能在平台机构中授予。",
                "The platform administrator role exists only in the platform organisation.",
            )
        return
    role_id = workflow.custom_role_id(role)
    if role_id is None or not Role.objects.filter(pk=role_id, organisation=organisation).exists():
        raise AccountError("role_unknown", f"未知角色：{role}。", f"Unknown role: {role}.")


def _check_separation(user: Any, organisation: Organisation, role: str) -> None:
    held = set(
        Membership.objects.filter(user=user, organisation=organisation, is_active=True).values_list(
            "role", flat=True
        )
    )
    # One membership per organisation: the role replaces the old one, so only other
    # organisations' memberships of the same person could conflict in a chain; check them too.
    held |= set(
        Membership.objects.filter(user=user, is_active=True)
        .exclude(organisation=organisation)
        .filter(Q(organisation__parent=organisation) | Q(organisation=organisation.parent_id))
        .values_list("role", flat=True)
    )
    held.discard(role)
    pair = workflow.separation_conflict(held, role)
    if pair:
        names = " / ".join(workflow.BUILTIN_ROLES[r].label for r in sorted(pair))
        raise AccountError(
            "separation_of_duties",
            f"同一人不能兼任：{names}。",
            f"One person may not hold both roles (separation of duties): {names}.",
        )


def _validate_password(password: str, user: Any) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError("password_invalid", " ".join(exc.messages), "") from exc


def create_account(
    *,
    organisation: Organisation,
    username: str,
    password: str,
    role: str,
    by: Any,
    email: str = "",
    phone: str = "",
    ip: str | None = None,
) -> Any:
    """An administrator creates an account; its owner must change the password at first login."""
    user_model = get_user_model()
    _check_role(organisation, role)
    if user_model.objects.filter(username=username).exists():
        raise AccountError(
            "username_taken", f"用户名 {username} 已被使用。", f"Username {username} is taken."
        )
    _validate_password(password, user_model(username=username, email=email))
    with transaction.atomic():
        user = user_model.objects.create_user(username=username, password=password, email=email)
        Membership.objects.create(user=user, organisation=organisation, role=role)
        profile = profile_of(user)
        profile.must_change_password = True
        profile.phone = phone or None
        profile.save(update_fields=["must_change_password", "phone_sealed", "phone_index"])
        audit.record(
            "account.created",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
            ip=ip,
            detail={"username": username, "role": role},
        )
    return user


def invite(
    *,
    organisation: Organisation,
    username: str,
    role: str,
    by: Any,
    email: str = "",
    phone: str = "",
    now: datetime | None = None,
) -> tuple[Invitation, str]:
    """An invitation link; returns the row and the token (only its hash is stored: shown once)."""
    _check_role(organisation, role)
    if get_user_model().objects.filter(username=username).exists():
        raise AccountError(
            "username_taken", f"用户名 {username} 已被使用。", f"Username {username} is taken."
        )
    raw = new_token(32)
    now = now or timezone.now()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            organisation=organisation,
            username=username,
            email=email,
            phone=phone,
            role=role,
            token_hash=_hash(raw),
            invited_by=by,
            expires_at=now + timedelta(hours=INVITATION_TTL_HOURS),
        )
        audit.record(
            "account.invited",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"invitation:{invitation.pk}",
            detail={"username": username, "role": role},
        )
    return invitation, raw


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def open_invitation(raw: str) -> Invitation | None:
    inv = Invitation.objects.filter(token_hash=_hash(raw)).select_related("organisation").first()
    if inv is None or inv.accepted_at or inv.revoked_at or inv.expires_at <= timezone.now():
        return None
    return inv


def accept_invitation(*, raw_token: str, password: str, ip: str | None = None) -> Any:
    """The invitee chooses a password: the account exists and is active from now on."""
    user_model = get_user_model()
    with transaction.atomic():
        inv = open_invitation(raw_token)
        if inv is None:
            raise AccountError(
                "invitation_invalid",
                "邀请链接无效或已过期。",
                "The invitation link is invalid or has expired.",
            )
        inv = Invitation.objects.select_for_update().get(pk=inv.pk)
        if inv.accepted_at:
            raise AccountError(
                "invitation_used", "邀请链接已被使用。", "The invitation link was already used."
            )
        _validate_password(password, user_model(username=inv.username, email=inv.email))
        try:
            with transaction.atomic():
                user = user_model.objects.create_user(
                    username=inv.username, password=password, email=inv.email
                )
        except IntegrityError as exc:
            raise AccountError(
                "username_taken", f"用户名 {inv.username} 已被使用。", f"Username {inv.username} is taken."
            ) from exc
        Membership.objects.create(user=user, organisation=inv.organisation, role=inv.role)
        if inv.phone:
            profile = profile_of(user)
            profile.phone = inv.phone
            profile.save(update_fields=["phone_sealed", "phone_index"])
        inv.accepted_at = timezone.now()
        inv.save(update_fields=["accepted_at"])
        audit.record(
            "account.activated",
            organisation_id=inv.organisation_id,
            user_id=user.pk,
            actor=_actor(user),
            target=f"user:{user.pk}",
            ip=ip,
            detail={"invitation": inv.pk, "role": inv.role},
        )
    return user


def membership(user: Any, organisation: Organisation) -> Membership:
    return Membership.objects.get(user=user, organisation=organisation)


def set_role(*, user: Any, organisation: Organisation, role: str, by: Any) -> None:
    _check_role(organisation, role)
    _check_separation(user, organisation, role)
    with transaction.atomic():
        m = Membership.objects.select_for_update().get(user=user, organisation=organisation)
        old = m.role
        if old == role:
            return
        m.role = role
        m.save(update_fields=["role"])
        audit.record(
            "account.role_changed",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
            detail={"from": old, "to": role},
        )


def modify_account(
    *,
    user: Any,
    organisation: Organisation,
    by: Any,
    email: str | None = None,
    phone: str | None = None,
) -> None:
    changed: dict[str, Any] = {}
    with transaction.atomic():
        if email is not None and email != email_of(user):
            profile = profile_of(user)
            profile.email = email or None
            profile.save(update_fields=["email_sealed", "email_index"])
            changed["email"] = True
        if phone is not None:
            profile = profile_of(user)
            if (profile.phone or "") != phone:
                profile.phone = phone or None
                profile.phone_verified = False
                profile.save(update_fields=["phone_sealed", "phone_index", "phone_verified"])
                changed["phone"] = True
        if changed:
            audit.record(
                "account.modified",
                organisation_id=organisation.pk,
                user_id=_uid(by),
                actor=_actor(by),
                target=f"user:{user.pk}",
                detail={"changed": sorted(changed)},
            )


def disable_account(*, user: Any, organisation: Organisation, by: Any) -> None:
    """The user loses everything in this organisation at once; with no other organisation left the
    account itself is disabled, so its sessions end at their next request."""
    with transaction.atomic():
        Membership.objects.filter(user=user, organisation=organisation).update(is_active=False)
        if not Membership.objects.filter(user=user, is_active=True).exists() and user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        audit.record(
            "account.disabled",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
        )


def enable_account(*, user: Any, organisation: Organisation, by: Any) -> None:
    with transaction.atomic():
        Membership.objects.filter(user=user, organisation=organisation).update(is_active=True)
        if not user.is_active:
            user.is_active = True
            user.save(update_fields=["is_active"])
        audit.record(
            "account.activated",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
        )


def delete_account(*, user: Any, organisation: Organisation, by: Any) -> None:
    """Removes the membership; an account left in no organisation is deleted (its audit rows stay)."""
    if by is not None and by.pk == user.pk:
        raise AccountError("delete_self", "不能删除自己的账号。", "You cannot delete your own account.")
    with transaction.atomic():
        Membership.objects.filter(user=user, organisation=organisation).delete()
        gone = not Membership.objects.filter(user=user).exists()
        audit.record(
            "account.deleted",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
            detail={"username": user.get_username(), "account_deleted": gone},
        )
        if gone:
            user.delete()


# ------------------------------------------------------------------------------ custom roles


def _role_error(problems: list[workflow.RoleProblem]) -> AccountError:
    return AccountError(problems[0].code, " ".join(p.zh for p in problems), " ".join(p.en for p in problems))


def create_role(*, organisation: Organisation, name: str, permissions: set[str], by: Any) -> Role:
    problems = workflow.custom_role_problems(name, permissions)
    if problems:
        raise _role_error(problems)
    if Role.objects.filter(organisation=organisation, name=name.strip()).exists():
        raise AccountError("role_name_taken", "已有同名角色。", "A role with this name exists.")
    with transaction.atomic():
        role = Role.objects.create(
            organisation=organisation, name=name.strip(), permissions=sorted(permissions)
        )
        audit.record(
            "role.created",
            organisation_id=organisation.pk,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"role:{role.pk}",
            detail={"name": role.name, "permissions": role.permissions},
        )
    return role


def update_role(*, role: Role, name: str, permissions: set[str], by: Any) -> None:
    problems = workflow.custom_role_problems(name, permissions)
    if problems:
        raise _role_error(problems)
    with transaction.atomic():
        before = sorted(role.permissions)
        role.name = name.strip()
        role.permissions = sorted(permissions)
        role.save(update_fields=["name", "permissions"])
        audit.record(
            "role.modified",
            organisation_id=role.organisation_id,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"role:{role.pk}",
            detail={"name": role.name, "from": before, "to": role.permissions},
        )


def delete_role(*, role: Role, by: Any) -> None:
    code = workflow.custom_role_code(role.pk)
    if Membership.objects.filter(organisation_id=role.organisation_id, role=code).exists():
        raise AccountError(
            "role_in_use",
            "仍有成员使用该角色，请先为他们更换角色。",
            "Members still hold this role; re-role them first.",
        )
    with transaction.atomic():
        audit.record(
            "role.deleted",
            organisation_id=role.organisation_id,
            user_id=_uid(by),
            actor=_actor(by),
            target=f"role:{role.pk}",
            detail={"name": role.name},
        )
        role.delete()


def role_choices(organisation: Organisation) -> list[tuple[str, str]]:
    """Roles an administrator may assign in this organisation: built-in, then its custom roles."""
    builtin = [
        (r.code, r.label)
        for r in workflow.BUILTIN_ROLES.values()
        if r.code != "platform_admin" or organisation.kind == Organisation.Kind.PLATFORM
    ]
    custom = [
        (workflow.custom_role_code(r.pk), r.name) for r in Role.objects.filter(organisation=organisation)
    ]
    return builtin + custom


def role_label(code: str, organisation_id: int) -> str:
    if code in workflow.BUILTIN_ROLES:
        return workflow.BUILTIN_ROLES[code].label
    role_id = workflow.custom_role_id(code)
    role = Role.objects.filter(pk=role_id, organisation_id=organisation_id).first() if role_id else None
    return role.name if role else code


# ------------------------------------------------------------------------------ access review


@dataclass(frozen=True)
class ReviewRow:
    user_id: int
    username: str
    role: str
    role_label: str
    active: bool
    last_login: datetime | None
    dormant: bool
    locked: bool
    mfa: bool
    mfa_exempt: str


def access_review(organisation: Organisation, *, now: datetime | None = None) -> list[ReviewRow]:
    """R-7.3.2.1e: every member's role and last login; dormant accounts flagged."""
    from allauth.mfa.models import Authenticator

    now = now or timezone.now()
    dormant_days = _setting("VETPACS_DORMANT_AFTER_DAYS", 90)
    members = (
        Membership.objects.filter(organisation=organisation).select_related("user").order_by("user__username")
    )
    user_ids = [m.user_id for m in members]
    with_mfa = set(
        Authenticator.objects.filter(
            user_id__in=user_ids, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
        ).values_list("user_id", flat=True)
    )
    profiles = {p.user_id: p for p in AccountProfile.objects.filter(user_id__in=user_ids)}
    rows = []
    for m in members:
        u = m.user
        seen = u.last_login or u.date_joined
        profile = profiles.get(u.pk)
        rows.append(
            ReviewRow(
                user_id=u.pk,
                username=u.get_username(),
                role=m.role,
                role_label=role_label(m.role, organisation.pk),
                active=m.is_active and u.is_active,
                last_login=u.last_login,
                dormant=workflow.is_dormant((now - seen).total_seconds() / 86400, dormant_days),
                locked=bool(profile and profile.locked_until and profile.locked_until > now),
                mfa=u.pk in with_mfa,
                mfa_exempt=profile.mfa_exempt_reason if profile else "",
            )
        )
    return rows


def review_action(*, user: Any, organisation: Organisation, action: str, role: str = "", by: Any) -> None:
    """One step from the access review: disable, enable, or re-role a member."""
    if action == "disable":
        disable_account(user=user, organisation=organisation, by=by)
    elif action == "enable":
        enable_account(user=user, organisation=organisation, by=by)
    elif action == "role":
        set_role(user=user, organisation=organisation, role=role, by=by)
    elif action == "unlock":
        unlock_account(user=user, by=by)
    else:
        raise AccountError("action_unknown", f"未知操作：{action}。", f"Unknown action: {action}.")


# --------------------------------------------------------------------- lockout and IP blocks


def _lock_settings() -> tuple[int, int, int]:
    return (
        _setting("VETPACS_LOCKOUT_FAILURES", 5),
        _setting("VETPACS_LOCKOUT_WINDOW_SECONDS", 900),
        _setting("VETPACS_LOCKOUT_SECONDS", 900),
    )


def _block_settings() -> tuple[int, int, int]:
    return (
        _setting("VETPACS_IP_BLOCK_FAILURES", 20),
        _setting("VETPACS_IP_BLOCK_WINDOW_SECONDS", 900),
        _setting("VETPACS_IP_BLOCK_SECONDS", 3600),
    )


def active_ip_block(ip: str | None, now: datetime | None = None) -> IpBlock | None:
    if not ip:
        return None
    now = now or timezone.now()
    return IpBlock.objects.filter(ip=ip, until__gt=now, lifted_at__isnull=True).order_by("-until").first()


# Every request that carries a session or a token asks whether its address is blocked
# (R-7.3.2.2a: the connection is cut, not only the next login). The blocked addresses are read at
# most this often per process, so the question costs a set lookup; a block made in this process
# counts at once, one made elsewhere within this many seconds. A listed address is confirmed in the
# database, so a lifted block frees it at once.
BLOCK_CACHE_SECONDS = 5
_monotonic = time.monotonic
_blocked_ips: frozenset[str] = frozenset()
_blocked_read_until = 0.0


def forget_ip_blocks() -> None:
    """Read the blocked addresses afresh on the next question (a block made or lifted here)."""
    global _blocked_read_until  # noqa: PLW0603 - the process's one cache of blocked addresses
    _blocked_read_until = 0.0


def _blocked_addresses() -> frozenset[str]:
    global _blocked_ips, _blocked_read_until  # noqa: PLW0603 - the process's one cache of blocked addresses
    clock = _monotonic()
    if clock >= _blocked_read_until:
        now = timezone.now()
        _blocked_ips = frozenset(
            IpBlock.objects.filter(until__gt=now, lifted_at__isnull=True).values_list("ip", flat=True)
        )
        _blocked_read_until = clock + BLOCK_CACHE_SECONDS
    return _blocked_ips


def address_blocked(ip: str | None) -> IpBlock | None:
    """The active block of an address, asked cheaply (see BLOCK_CACHE_SECONDS)."""
    if not ip or ip not in _blocked_addresses():
        return None
    return active_ip_block(ip)


def check_login_allowed(login: str, ip: str | None, now: datetime | None = None) -> None:
    """Raise LoginRefused for a blocked address or a locked account (even with the right password)."""
    now = now or timezone.now()
    if active_ip_block(ip, now):
        raise LoginRefused(
            "ip_blocked",
            "此网络地址因多次登录失败已被暂时封禁，请稍后再试或联系管理员。",
            "This address is blocked for a while after many failed logins;"
            " try later or ask an administrator.",
        )
    user = find_user(login)
    if user is None:
        return
    profile = AccountProfile.objects.filter(user=user).first()
    if profile and profile.locked_until and profile.locked_until > now:
        minutes = max(1, int((profile.locked_until - now).total_seconds() // 60) + 1)
        raise LoginRefused(
            "account_locked",
            f"账号因多次登录失败已锁定，请在 {minutes} 分钟后重试或联系管理员解锁。",
            f"The account is locked after repeated failed logins; try again in {minutes} min"
            " or ask an administrator to unlock it.",
        )


def _org_ids(user: Any) -> list[int]:
    return list(Membership.objects.filter(user=user).values_list("organisation_id", flat=True))


def record_login_failure(login: str, ip: str | None, now: datetime | None = None) -> None:
    """Count a failure; lock the account or block the address when a threshold is reached."""
    now = now or timezone.now()
    user = find_user(login)
    key = f"user:{user.pk}" if user else f"login:{(login or '').strip().casefold()[:180]}"
    lock_after, lock_window, lock_seconds = _lock_settings()
    block_after, block_window, block_seconds = _block_settings()
    with transaction.atomic():
        # Rows past every window count for nothing: each failure sweeps them (an indexed range).
        keep = max(lock_window, block_window, FAILURE_KEEP_SECONDS)
        LoginFailure.objects.filter(at__lt=now - timedelta(seconds=keep)).delete()
        LoginFailure.objects.create(key=key, user=user, ip=ip or None, at=now)
        audit.record(
            "login.failed",
            organisation_id=(_org_ids(user) or [None])[0] if user else None,
            user_id=_uid(user),
            actor=f"login:{(login or '')[:100]}",
            target=f"user:{user.pk}" if user else "",
            ip=ip,
            result="failed",
        )
        if user is not None:
            profile = profile_of(user)
            since = now - timedelta(seconds=lock_window)
            if profile.failures_cleared_at and profile.failures_cleared_at > since:
                since = profile.failures_cleared_at
            count = LoginFailure.objects.filter(key=key, at__gt=since).count()
            already = profile.locked_until and profile.locked_until > now
            if workflow.should_lock_account(count, lock_after) and not already:
                profile.locked_until = now + timedelta(seconds=lock_seconds)
                profile.save(update_fields=["locked_until"])
                orgs = _org_ids(user)
                SecurityEvent.objects.create(
                    kind=SecurityEvent.Kind.ACCOUNT_LOCKED,
                    subject=f"user:{user.pk}",
                    organisation_ids=orgs,
                    ip=ip or None,
                    at=now,
                    detail={
                        "username": user.get_username(),
                        "failures": count,
                        "until": profile.locked_until.isoformat(),
                    },
                )
                audit.record(
                    "account.locked",
                    organisation_id=(orgs or [None])[0],
                    target=f"user:{user.pk}",
                    actor="system",
                    ip=ip,
                    detail={"failures": count, "window_seconds": lock_window, "lock_seconds": lock_seconds},
                )
        if ip and not active_ip_block(ip, now):
            stats = LoginFailure.objects.filter(
                ip=ip, at__gt=now - timedelta(seconds=block_window)
            ).aggregate(n=Count("id"), keys=Count("key", distinct=True))
            if workflow.should_block_ip(stats["n"], stats["keys"], block_after):
                until = now + timedelta(seconds=block_seconds)
                IpBlock.objects.create(ip=ip, created_at=now, until=until)
                forget_ip_blocks()
                SecurityEvent.objects.create(
                    kind=SecurityEvent.Kind.IP_BLOCKED,
                    subject=f"ip:{ip}",
                    ip=ip,
                    at=now,
                    detail={"failures": stats["n"], "accounts": stats["keys"], "until": until.isoformat()},
                )
                audit.record(
                    "ip.blocked",
                    actor="system",
                    target=f"ip:{ip}",
                    ip=ip,
                    detail={
                        "failures": stats["n"],
                        "accounts": stats["keys"],
                        "block_seconds": block_seconds,
                    },
                )


def record_login_success(user: Any, ip: str | None, now: datetime | None = None) -> None:
    """The owner got in: earlier failures no longer count towards a lock of this account."""
    now = now or timezone.now()
    with transaction.atomic():
        AccountProfile.objects.update_or_create(user=user, defaults={"failures_cleared_at": now})
        audit.record(
            "login.succeeded",
            organisation_id=(_org_ids(user) or [None])[0],
            user_id=user.pk,
            actor=_actor(user),
            target=f"user:{user.pk}",
            ip=ip,
        )


def record_logout(user: Any, ip: str | None) -> None:
    audit.record(
        "logout",
        organisation_id=(_org_ids(user) or [None])[0] if user else None,
        user_id=_uid(user),
        actor=_actor(user),
        target=f"user:{user.pk}" if user else "",
        ip=ip,
    )


def unlock_account(*, user: Any, by: Any, now: datetime | None = None) -> None:
    now = now or timezone.now()
    with transaction.atomic():
        profile = profile_of(user)
        profile.locked_until = None
        profile.failures_cleared_at = now
        profile.save(update_fields=["locked_until", "failures_cleared_at"])
        SecurityEvent.objects.filter(
            kind=SecurityEvent.Kind.ACCOUNT_LOCKED, subject=f"user:{user.pk}", resolved=False
        ).update(resolved=True, resolved_at=now, resolved_by=by)
        audit.record(
            "account.unlocked",
            organisation_id=(_org_ids(user) or [None])[0],
            user_id=_uid(by),
            actor=_actor(by),
            target=f"user:{user.pk}",
        )


def purge_security_records(*, before: datetime) -> int:
    """Security events and ended IP blocks older than `before` (the audit retention, R-7.3.2.2f).
    Each lock and block is also in the audit log, whose own purge keeps the chain verifiable."""
    with transaction.atomic():
        events, _ = SecurityEvent.objects.filter(at__lt=before).delete()
        blocks, _ = IpBlock.objects.filter(until__lt=before).delete()
        LoginFailure.objects.filter(at__lt=before).delete()
    return events + blocks


def lift_ip_block(*, ip: str, by: Any, now: datetime | None = None) -> None:
    now = now or timezone.now()
    with transaction.atomic():
        IpBlock.objects.filter(ip=ip, lifted_at__isnull=True).update(lifted_at=now)
        forget_ip_blocks()
        SecurityEvent.objects.filter(
            kind=SecurityEvent.Kind.IP_BLOCKED, subject=f"ip:{ip}", resolved=False
        ).update(resolved=True, resolved_at=now, resolved_by=by)
        audit.record("ip.unblocked", user_id=_uid(by), actor=_actor(by), target=f"ip:{ip}", ip=ip)


def security_events(user: Any, *, limit: int = 200) -> list[SecurityEvent]:
    """Events an administrator may see: those of their organisations (all of them for the platform)."""
    orgs = {o.pk for o in organisations_with(user, "security.manage")}
    platform = user.is_superuser or any(
        m.organisation.kind == Organisation.Kind.PLATFORM for m in _memberships(user.pk)
    )
    rows = list(SecurityEvent.objects.all()[: limit * 5])
    if not platform:
        # An IP block concerns no one organisation; a clinic's administrators see it when it hit them.
        rows = [e for e in rows if set(e.organisation_ids) & orgs]
    return rows[:limit]


# ------------------------------------------------------------------------------ passwords


def password_history_problem(password: str, user: Any) -> bool:
    """True if the password is the current one or one of the last PASSWORD_HISTORY_SIZE."""
    if user is None or not user.pk:
        return False
    hashes = list(
        PasswordHistory.objects.filter(user_id=user.pk).values_list("password_hash", flat=True)[
            :PASSWORD_HISTORY_SIZE
        ]
    )
    current = get_user_model().objects.filter(pk=user.pk).values_list("password", flat=True).first()
    if current and current not in hashes:
        hashes.insert(0, current)
    return any(check_password(password, h) for h in hashes[:PASSWORD_HISTORY_SIZE])


def remember_password(user: Any, now: datetime | None = None) -> None:
    """Called once a new password is saved: keep its hash, note the time, drop older entries."""
    if not user.pk or not user.has_usable_password():
        return
    now = now or timezone.now()
    latest = PasswordHistory.objects.filter(user_id=user.pk).values_list("password_hash", flat=True).first()
    if latest == user.password:  # both the creation and set_password() reported the same one
        return
    with transaction.atomic():
        PasswordHistory.objects.create(user_id=user.pk, password_hash=user.password, created_at=now)
        keep = list(
            PasswordHistory.objects.filter(user_id=user.pk).values_list("id", flat=True)[
                :PASSWORD_HISTORY_SIZE
            ]
        )
        PasswordHistory.objects.filter(user_id=user.pk).exclude(id__in=keep).delete()
        AccountProfile.objects.update_or_create(
            user_id=user.pk, defaults={"password_changed_at": now, "must_change_password": False}
        )


def password_age_days(user: Any, now: datetime | None = None) -> float:
    now = now or timezone.now()
    profile = AccountProfile.objects.filter(user=user).first()
    since = (profile and profile.password_changed_at) or user.date_joined
    return (now - since).total_seconds() / 86400


def password_expired(user: Any, now: datetime | None = None) -> bool:
    return workflow.password_is_old(
        password_age_days(user, now), _setting("VETPACS_PASSWORD_MAX_AGE_DAYS", 90)
    )


def must_change_password(user: Any) -> bool:
    return AccountProfile.objects.filter(user=user, must_change_password=True).exists()


def change_password(*, user: Any, current: str, new: str) -> None:
    """R-7.3.2.1d: the current password first; then the policy, history included."""
    if not user.check_password(current):
        raise AccountError("password_current_wrong", "当前密码不正确。", "The current password is wrong.")
    _validate_password(new, user)
    with transaction.atomic():
        user.set_password(new)
        user.save()
        audit.record("password.changed", user_id=user.pk, actor=_actor(user), target=f"user:{user.pk}")


# ------------------------------------------------------------- password reset by SMS code

RESET_PURPOSE = "password_reset"
_RESET_CODE_WRONG = (
    "reset_code_invalid",
    "验证码错误、已使用或已过期。",
    "The code is wrong, used or expired.",
)


def _phone_forms(phone: str) -> list[str]:
    """The ways a mainland number may have been stored: as typed, bare 11 digits, +86 form."""
    from vetpacs.apps.sms import services as sms

    forms = [phone.strip()]
    try:
        bare = sms.normalise_phone(phone)
    except VetpacsError:
        return forms
    forms += [bare, f"+86{bare}"] if len(bare) == 11 and not bare.startswith("+") else [bare]
    return list(dict.fromkeys(forms))


def user_by_phone(phone: str) -> Any | None:
    """The active account whose (sealed) phone is this number, found through the blind index."""
    indexes = [phone_index(p) for p in _phone_forms(phone) if p]
    profile = (
        AccountProfile.objects.filter(phone_index__in=indexes, user__is_active=True)
        .select_related("user")
        .first()
    )
    return profile.user if profile else None


def request_password_reset_code(*, phone: str, ip: str | None = None) -> None:
    """Send a reset code to an account's phone (R-7.3.2.1d: a verified code instead of the current
    password). A number that belongs to nobody gets no SMS and the same answer, so the page tells
    nobody which numbers have accounts; the SMS limits per phone and per address apply
    (sms.issue_code raises SMS_RATE_LIMITED)."""
    from vetpacs.apps.sms import services as sms

    user = user_by_phone(phone)
    if user is None:
        sms.normalise_phone(phone)  # a malformed number is still told so
        audit.record("password.reset_requested", ip=ip, result="unknown", detail={"phone": mask_phone(phone)})
        return
    sms.issue_code(phone=phone, purpose=RESET_PURPOSE, ip=ip, user_id=user.pk)
    audit.record(
        "password.reset_requested",
        organisation_id=(_org_ids(user) or [None])[0],
        user_id=user.pk,
        actor=_actor(user),
        target=f"user:{user.pk}",
        ip=ip,
        detail={"phone": mask_phone(phone)},
    )


def reset_password_with_code(*, phone: str, code: str, new: str, ip: str | None = None) -> Any:
    """Set a new password on the proof of a reset code (single use). The password policy, history
    included, is checked before the code is spent, so a refused password leaves the code usable.
    A lock from failed logins ends: the owner has proven who they are. Sessions elsewhere end too
    (Django ties a session to the password hash)."""
    from vetpacs.apps.sms import services as sms

    user = user_by_phone(phone)
    if user is None:
        raise AccountError(*_RESET_CODE_WRONG)
    _validate_password(new, user)
    try:
        sms.check_code(phone=phone, purpose=RESET_PURPOSE, code=code, ip=ip, user_id=user.pk)
    except VetpacsError as exc:
        raise AccountError(*_RESET_CODE_WRONG) from exc
    now = timezone.now()
    with transaction.atomic():
        user.set_password(new)
        user.save(update_fields=["password"])
        remember_password(user, now)
        AccountProfile.objects.filter(user=user).update(locked_until=None, failures_cleared_at=now)
        audit.record(
            "password.reset",
            organisation_id=(_org_ids(user) or [None])[0],
            user_id=user.pk,
            actor=_actor(user),
            target=f"user:{user.pk}",
            ip=ip,
            detail={"by": "sms_code"},
        )
    return user
