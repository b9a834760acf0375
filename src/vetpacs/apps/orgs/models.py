"""Organisations, who belongs to them, and API tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Organisation(models.Model):
    class Kind(models.TextChoices):
        CLINIC = "clinic", "诊所 Clinic"
        CHAIN = "chain", "连锁 Chain"
        CENTER = "center", "影像中心 Imaging centre"
        PLATFORM = "platform", "平台 Platform"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CLINIC)
    # A chain's member clinics point at the chain.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="members"
    )
    # R-6.2.6.3: every member must use a second factor (administrators always must).
    mfa_required = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    # A built-in role code (accounts.workflow.BUILTIN_ROLES) or "custom:<id>" of an accounts.Role.
    role = models.CharField(max_length=32, default="org_admin")
    # A disabled membership grants nothing in that organisation (R-7.3.2.1a "disable").
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_org")
        ]


class ApiToken(models.Model):
    """A bearer token for the JSON API and DICOMweb; only its SHA-256 is kept."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
