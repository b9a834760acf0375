"""Gateways (前置机), their one-time enrolment codes, queued commands, and the HIS/RIS records they upload."""

from __future__ import annotations

from django.db import models


class Gateway(models.Model):
    """One clinic gateway. The heartbeat writes only the `last_*` columns, in one indexed update."""

    class State(models.TextChoices):
        PENDING = "pending", "待注册 Awaiting enrolment"
        ONLINE = "online", "在线 Online"
        OFFLINE = "offline", "离线 Offline"
        REVOKED = "revoked", "已停用 Revoked"

    organisation = models.ForeignKey("orgs.Organisation", on_delete=models.CASCADE, related_name="gateways")
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=40, unique=True)
    # The clinic API token the gateway authenticates with (its secret is shown to it once).
    token_id = models.BigIntegerField(null=True, blank=True, unique=True)
    # The recorded state: the heartbeat moves it to online, the offline sweep to offline, each audited.
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    version = models.CharField(max_length=40, blank=True)
    queue_depth = models.IntegerField(default=0)
    failures = models.IntegerField(default=0)
    disk_free_bytes = models.BigIntegerField(null=True, blank=True)
    # Set when a command is queued, cleared when a beat looks for commands: a beat reads it back
    # from its own UPDATE, so a gateway with nothing to do costs no SELECT.
    commands_waiting = models.BooleanField(default=False)
    # What else the gateway reported (last error, throughput...): shown, never queried.
    last_status = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "last_seen_at"], name="gateway_state_seen")]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="gateway_name_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"


class EnrolmentCode(models.Model):
    """A one-time code an admin hands to the clinic's installer; only its SHA-256 is kept."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="enrolment_codes")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)


class Command(models.Model):
    """Work an admin asks of a gateway; handed out in one heartbeat reply, then acknowledged."""

    class Kind(models.TextChoices):
        RETRY_ALL = "retry_all", "全部重试 Retry all"
        STOP = "stop", "停止上传 Stop upload"
        RESUME = "resume", "继续上传 Resume upload"
        SEND_REPORT = "send_report", "回传报告 Send report back"

    class State(models.TextChoices):
        QUEUED = "queued", "排队 Queued"
        DELIVERED = "delivered", "已下发 Delivered"
        DONE = "done", "完成 Done"
        FAILED = "failed", "失败 Failed"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    args = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["gateway", "state"], name="command_gateway_state")]


class Record(models.Model):
    """A patient or order record from the clinic's HIS/RIS (HL7 v2, CSV, JSON), uploaded by a gateway."""

    class Kind(models.TextChoices):
        PATIENT = "patient", "患宠 Patient"
        ORDER = "order", "检查申请 Order"

    organisation = models.ForeignKey("orgs.Organisation", on_delete=models.CASCADE, related_name="+")
    gateway = models.ForeignKey(Gateway, null=True, on_delete=models.SET_NULL, related_name="records")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Where it came from (hl7:<control id>, csv:<file>:<row>): a record sent twice is stored once.
    source_id = models.CharField(max_length=200)
    patient_id = models.CharField(max_length=64, db_index=True)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "source_id"], name="record_source_per_org"),
        ]
