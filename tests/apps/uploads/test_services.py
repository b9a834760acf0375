"""Upload services without HTTP: the expiry sweep, and an empty upload finishing at once."""

from __future__ import annotations

import datetime as dt
import io
import os

from django.utils import timezone

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.uploads import services
from vetpacs.apps.uploads.models import Upload


def _caller(clinic) -> services.Caller:
    return services.Caller(organisation_id=clinic.id, actor="test")


def _started(clinic, *, hours_ago: float, length: int = 100) -> Upload:
    upload = services.create_upload(caller=_caller(clinic), length=length, metadata={})
    upload = services.append(
        upload, caller=_caller(clinic), offset=0, body=io.BytesIO(b"x" * 10), content_length=10
    )
    Upload.objects.filter(pk=upload.pk).update(created_at=timezone.now() - dt.timedelta(hours=hours_ago))
    return upload


def test_sweep_removes_uploads_left_unfinished_past_the_expiry(clinic, settings):
    settings.VETPACS_UPLOAD_EXPIRY_HOURS = 24
    old = _started(clinic, hours_ago=25)
    recent = _started(clinic, hours_ago=1)
    finished = services.create_upload(caller=_caller(clinic), length=0, metadata={})  # refused: not DICOM
    Upload.objects.filter(pk=finished.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    stray = services.uploads_dir() / "0123456789abcdef0123456789abcdef.part"
    stray.write_bytes(b"left by a crash")
    two_days_ago = (timezone.now() - dt.timedelta(days=2)).timestamp()

    os.utime(stray, (two_days_ago, two_days_ago))

    assert services.sweep_expired() == 2
    assert set(Upload.objects.values_list("id", flat=True)) == {recent.id, finished.id}
    assert not services.data_path(old).exists() and not stray.exists()
    assert services.data_path(recent).stat().st_size == 10
    assert AuditEvent.objects.filter(action="upload.expired", target=f"upload:{old.id}").exists()


def test_an_empty_upload_is_judged_at_creation(clinic):
    upload = services.create_upload(caller=_caller(clinic), length=0, metadata={"filename": "empty.dcm"})
    assert upload.state == Upload.State.REFUSED and upload.reason_code == "not_dicom"
