"""A resumable upload: how many of its bytes are safely on disk, and what ingest made of it."""

from __future__ import annotations

import uuid

from django.db import models

from vetpacs.apps.orgs.models import Organisation


class Upload(models.Model):
    """One tus upload. `offset` counts only bytes that were fsynced before it was committed."""

    class State(models.TextChoices):
        RECEIVING = "receiving"
        COMPLETE = "complete"  # a partial upload with every byte, waiting for its final upload
        STORED = "stored"
        DUPLICATE = "duplicate"
        REFUSED = "refused"

    class Concat(models.TextChoices):
        NONE = ""
        PARTIAL = "partial"
        FINAL = "final"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="uploads")
    user_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict)  # Upload-Metadata, decoded
    concat = models.CharField(max_length=8, choices=Concat.choices, blank=True, default=Concat.NONE)
    parts = models.JSONField(default=list)  # a final upload's partial upload ids, in order
    final = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="partials"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVING, db_index=True)
    reason_code = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)  # of the whole received file
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    @property
    def done(self) -> bool:
        return self.state in (self.State.STORED, self.State.DUPLICATE, self.State.REFUSED)
