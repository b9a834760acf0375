"""Accounts: profile (phone, password age, lock), password history, custom roles, invitations,
login failures, IP blocks and security events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from vetpacs.apps.identity import services as identity

# Staff phone numbers and e-mail addresses are sealed at rest (R-7.3.4.1c) and found for login
# through a keyed blind index (exact match, forgiving case and surrounding space).
PHONE_PURPOSE = "accounts.phone"
EMAIL_PURPOSE = "accounts.email"


def phone_index(phone: str) -> str:
    return identity.platform_blind_index(PHONE_PURPOSE, phone)


def email_index(email: str) -> str:
    return identity.platform_blind_index(EMAIL_PURPOSE, email)


def _sealed(purpose: str, name: str, index: Any) -> property:
    """`obj.<name>` reads and writes the sealed column `<name>_sealed` (and `<name>_index`, where the
    model has one); a property, so Model(phone=...) and update_or_create(defaults={"phone": ...})
    work as for a field."""

    def get(obj: models.Model) -> str | None:
        sealed = getattr(obj, f"{name}_sealed")
        return identity.open_platform_value(purpose, sealed) if sealed else None

    def set_(obj: models.Model, value: str | None) -> None:
        setattr(obj, f"{name}_sealed", identity.seal_platform_value(purpose, value) if value else None)
        if hasattr(type(obj), f"{name}_index"):
            setattr(obj, f"{name}_index", index(value) if value else None)

    return property(get, set_)


_sealed_phone = _sealed(PHONE_PURPOSE, "phone", phone_index)
_sealed_email = _sealed(EMAIL_PURPOSE, "email", email_index)


class AccountProfile(models.Model):
    """What the platform keeps about a user beyond Django's User row."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # E.164 (+8613800138000); login by phone and SMS codes (R-7.3.4.4b). Sealed; see _sealed_phone.
    phone_sealed = models.BinaryField(null=True, blank=True)
    phone_index = models.CharField(max_length=64, null=True, blank=True, unique=True)
    phone = _sealed_phone
    phone_verified = models.BooleanField(default=False)
    # The user's e-mail: auth_user.email stays empty (signals.py moves any value written there into
    # this sealed column); login by e-mail goes through the index (backends.py).
    email_sealed = models.BinaryField(null=True, blank=True)
    email_index = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    email = _sealed_email
    password_changed_at = models.DateTimeField(null=True, blank=True)
    # R-7.3.2.1d: an account an administrator created must choose its own password at first login.
    must_change_password = models.BooleanField(default=False)
    # Set only by an explicit, audited decision (the demo account): an administrator without MFA.
    mfa_exempt_reason = models.CharField(max_length=200, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Failures before this moment no longer count towards a lock (set by an unlock or a success).
    failures_cleared_at = models.DateTimeField(null=True, blank=True)


class PasswordHistory(models.Model):
    """Hashes of a user's previous passwords: the last N may not be chosen again (R-7.3.2.1d)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    password_hash = models.CharField(max_length=256)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Role(models.Model):
    """A custom role of one organisation, made from the permission catalogue (workflow.PERMISSIONS)."""

    organisation = models.ForeignKey("orgs.Organisation", on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(max_length=64)
    permissions = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="role_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Invitation(models.Model):
    """A link an administrator sends; whoever opens it before expiry chooses a password and joins."""

    organisation = models.ForeignKey("orgs.Organisation", on_delete=models.CASCADE, related_name="+")
    username = models.CharField(max_length=150)
    email_sealed = models.BinaryField(null=True, blank=True)
    email = _sealed_email
    phone_sealed = models.BinaryField(null=True, blank=True)
    phone = _sealed_phone
    role = models.CharField(max_length=32)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class LoginFailure(models.Model):
    """One failed password login. Rows in the database, so every platform process counts the same."""

    key = models.CharField(max_length=200)  # user:<id>, or the login typed when no user matches
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+")
    ip = models.GenericIPAddressField(null=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["key", "at"], name="loginfailure_key_at"),
            models.Index(fields=["ip", "at"], name="loginfailure_ip_at"),
            models.Index(fields=["at"], name="loginfailure_at"),
        ]


class IpBlock(models.Model):
    ip = models.GenericIPAddressField(db_index=True)
    created_at = models.DateTimeField()
    until = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)


class SecurityEvent(models.Model):
    """Something an administrator should see (R-7.3.2.2a): a locked account, a blocked address."""

    class Kind(models.TextChoices):
        ACCOUNT_LOCKED = "account_locked", "账号已锁定 Account locked"
        IP_BLOCKED = "ip_blocked", "IP 已封禁 IP blocked"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject = models.CharField(max_length=200)  # user:<id> or ip:<address>
    organisation_ids = models.JSONField(default=list)  # who may see it (the user's organisations)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(db_index=True)
    detail = models.JSONField(default=dict)
    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
