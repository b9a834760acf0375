"""Evidence of real-name verification, signing keys and signatures: append-only tables (存证)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AppendOnly(models.Model):
    """Rows are written once: no update, no delete (the migration adds database triggers too)."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(f"{type(self).__name__} rows are append-only")


class RealNameVerification(AppendOnly):
    """One attempt to verify a user's real name and ID number with a provider, and its answer."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # AES-256-GCM under a key derived from the master key, bound to the user and field.
    sealed_name = models.BinaryField()
    sealed_id_number = models.BinaryField()
    # Keyed blind index: finds other accounts using the same ID number without decrypting.
    id_number_index = models.CharField(max_length=64, db_index=True)
    provider = models.CharField(max_length=32)
    provider_reference = models.CharField(max_length=128, blank=True)
    verified = models.BooleanField()
    reason = models.CharField(max_length=200, blank=True)
    # SHA-256 of the provider's answer as received: the evidence, without keeping personal data twice.
    evidence_sha256 = models.CharField(max_length=64)
    at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)


class SigningKey(AppendOnly):
    """A verified user's Ed25519 key pair; the private key only sealed. A newer key supersedes older."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verification = models.ForeignKey(RealNameVerification, on_delete=models.PROTECT, related_name="+")
    public_key = models.BinaryField()  # raw 32 bytes
    sealed_private_key = models.BinaryField()
    fingerprint = models.CharField(max_length=64, unique=True)  # SHA-256 of the public key, hex
    created_at = models.DateTimeField()


class Signature(AppendOnly):
    """One signature: what was signed (its SHA-256), by which key, when, for what."""

    key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="signatures")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=64)  # e.g. report.signed
    target = models.CharField(max_length=200, blank=True)  # e.g. report:42
    payload_sha256 = models.CharField(max_length=64, db_index=True)
    signature = models.BinaryField()  # 64 bytes, Ed25519 over the payload's SHA-256
    signed_at = models.DateTimeField()
