"""One append-only table; each row carries the hash of the previous one."""

from django.db import models


class AuditEvent(models.Model):
    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=64, db_index=True)  # dotted, past tense: study.downloaded
    organisation_id = models.BigIntegerField(null=True, db_index=True)
    user_id = models.BigIntegerField(null=True)
    actor = models.CharField(max_length=150, blank=True)  # user:name, token:prefix, system
    target = models.CharField(max_length=200, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    result = models.CharField(max_length=16, default="ok")
    detail = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]


class AuditHead(models.Model):
    """The chain's newest hash, in one row locked by every writer so appends are serialised."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    hash = models.CharField(max_length=64)


class AuditPurge(models.Model):
    """A retention purge: the chain before it is gone, so verification starts from its last hash.

    Append-only like the events; the purge itself is also an audit event (audit.purged).
    """

    at = models.DateTimeField()
    # Every event with id <= up_to_id was removed; the last one's hash anchors the rest of the chain.
    up_to_id = models.BigIntegerField()
    anchor_hash = models.CharField(max_length=64)
    removed = models.BigIntegerField()
    retention_days = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
