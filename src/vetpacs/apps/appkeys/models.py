"""Application keys (the secret sealed at rest, since HMAC needs it back) and the nonces seen."""

from __future__ import annotations

from django.db import models


class AppKey(models.Model):
    organisation = models.ForeignKey("orgs.Organisation", on_delete=models.CASCADE, related_name="app_keys")
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=40, unique=True)
    # AES-256-GCM under a key derived from the master key, bound to key_id (core.crypto.seal).
    sealed_secret = models.BinaryField()
    # Scopes from workflow.SCOPES, e.g. ["dicomweb.read", "api.read"].
    scopes = models.JSONField(default=list)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key_id} ({self.name})"


class SeenNonce(models.Model):
    """A nonce used by a key; the unique pair refuses a replay in every process at once."""

    key = models.ForeignKey(AppKey, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "nonce"], name="appkey_nonce_once")]
