"""Verification codes sent by SMS: only keyed hashes of the phone and the code are kept."""

from __future__ import annotations

from django.db import models


class SmsCode(models.Model):
    # HMAC-SHA256 of the normalised phone number (key derived from the master key): rate limits and
    # lookups work without storing the number.
    phone_hash = models.CharField(max_length=64)
    purpose = models.CharField(max_length=32)
    # HMAC-SHA256 over phone, purpose and code: a database dump gives no usable code.
    code_hash = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["phone_hash", "purpose", "-created_at"], name="sms_code_lookup"),
            models.Index(fields=["ip", "created_at"], name="sms_code_ip"),
        ]
