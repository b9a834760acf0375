"""The platform's side of identity protection: a gateway's encrypted owner is restored at ingest."""

from __future__ import annotations

import io
import json
import os

import pydicom
import pytest

from tests.builders import dicom as build
from vetpacs.core.errors import VetpacsError
from vetpacs.gateway.pipeline import prepare
from vetpacs.gateway.protect import load_recipient

OWNER = "张伟"
PHONE = "13800138000"


@pytest.fixture
def envelope(settings, tmp_path):
    from vetpacs.apps.identity import envelope

    settings.DATA_DIR = tmp_path / "platform"
    envelope._pair.cache_clear()
    yield envelope
    envelope._pair.cache_clear()


def _gateway_file(tmp_path, envelope, **kwargs):
    ds = build.image(owner=OWNER, PatientTelephoneNumbers=PHONE, **kwargs)
    (tmp_path / "gw").mkdir(exist_ok=True)
    received = build.write(ds, tmp_path / "gw")
    recipient = load_recipient(envelope.platform_public_key_pem())
    prepared = prepare(received, tmp_path / "gw" / "ready.dcm", tmp_path / "gw", recipient=recipient)
    return ds, prepared.path


def test_key_pair_is_kept_with_mode_0600_and_reused(envelope, settings):
    first = envelope.platform_public_key_pem()
    path = settings.DATA_DIR / "keys" / envelope.KEY_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    envelope._pair.cache_clear()
    assert envelope.platform_public_key_pem() == first
    assert first.startswith(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.requirement("R-6.1.3c")
def test_ingest_restores_the_owner_for_the_owning_clinic_only(
    envelope, tmp_path, clinic, clinic_client, other_clinic_client
):
    from vetpacs.apps.archive import blobs
    from vetpacs.apps.archive.ingest import ingest_file
    from vetpacs.apps.archive.models import Instance

    ds, path = _gateway_file(tmp_path, envelope)
    assert OWNER.encode() not in path.read_bytes()
    result = ingest_file(path, organisation_id=clinic.id, source="upload")
    assert result.status == "stored"
    inst = Instance.objects.select_related("blob").get(sop_instance_uid=ds.SOPInstanceUID)
    with blobs.store().open(inst.blob.key) as f:
        stored = f.read()
    assert OWNER.encode() not in stored and PHONE.encode() not in stored
    stored_ds = pydicom.dcmread(io.BytesIO(stored))
    assert "EncryptedAttributesSequence" not in stored_ds

    resp = clinic_client.get(f"/dicomweb/studies?StudyInstanceUID={ds.StudyInstanceUID}")
    assert resp.status_code == 200
    [study] = resp.json()
    assert study["00100010"]["Value"][0]["Alphabetic"] == f"{OWNER}^Lucky"
    resp = clinic_client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
    meta = json.loads(b"".join(resp.streaming_content))
    assert meta[0]["00102297"]["Value"][0]["Alphabetic"] == OWNER
    assert "04000500" not in meta[0]
    other = other_clinic_client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
    assert other.status_code == 404


def test_an_unreadable_envelope_is_refused_not_stored_without_its_owner(envelope, tmp_path, clinic, settings):
    from vetpacs.apps.archive.ingest import ingest_file
    from vetpacs.apps.archive.models import Instance

    ds, path = _gateway_file(tmp_path, envelope)
    settings.DATA_DIR = tmp_path / "another-platform"
    envelope._pair.cache_clear()
    with pytest.raises(VetpacsError) as exc:
        ingest_file(path, organisation_id=clinic.id, source="upload")
    assert exc.value.code == "encrypted_attributes_unreadable"
    assert not Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
