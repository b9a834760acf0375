"""The ingest service: what is stored, what is refused, identity kept apart, compression queued."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless

from tests.builders import dicom as build
from vetpacs.apps.archive import blobs, services
from vetpacs.apps.archive.models import Blob, Instance, Patient, PendingBlob, Study
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.identity import services as identity
from vetpacs.apps.identity.models import Owner
from vetpacs.core.errors import VetpacsError


def _stored(inst: Instance) -> pydicom.Dataset:
    with blobs.store().open(inst.blob.key) as f:
        return pydicom.dcmread(f)


@pytest.mark.requirement("R-6.2.1a")
def test_an_image_is_indexed_at_every_level(ingest):
    ds = build.image(modality="DX", StudyDescription="胸部正位 Thorax VD")
    result = ingest(ds)
    assert result.status == "stored"
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    assert study.modalities_in_study == "DX"
    assert study.number_of_instances == 1 and study.number_of_series == 1
    assert study.species_description == "Canine"
    assert study.study_description == "胸部正位 Thorax VD"
    assert study.patient.animal_name == "Lucky"
    assert AuditEvent.objects.filter(action="instance.stored").count() == 1


def test_the_same_instance_twice_is_an_idempotent_success(ingest):
    ds = build.image()
    first = ingest(ds)
    again = ingest(ds)
    assert (first.status, again.status) == ("stored", "duplicate")
    assert Instance.objects.count() == 1 and Blob.objects.count() == 1


def test_same_uid_with_different_content_is_refused_with_a_reason(ingest):
    ds = build.image()
    ingest(ds)
    ds.StudyDescription = "changed"
    with pytest.raises(VetpacsError) as exc:
        ingest(ds)
    assert exc.value.code == "duplicate_instance"
    assert "different content" in exc.value.detail
    assert Blob.objects.count() == 1
    assert len(list(blobs.store().keys())) == 1, "the refused copy must not stay in the store"


def test_versions_are_kept_when_configured(ingest, settings):
    settings.VETPACS_KEEP_VERSIONS = True
    ds = build.image()
    ingest(ds)
    ds.StudyDescription = "corrected"
    assert ingest(ds).status == "replaced"
    inst = Instance.objects.get()
    assert inst.version == 2 and inst.versions.count() == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda ds: delattr(ds, "SOPInstanceUID"), "missing_attribute"),
        (lambda ds: setattr(ds, "StudyInstanceUID", "1.2.03.x"), "invalid_uid"),
        (lambda ds: setattr(ds, "SOPClassUID", "1.2.3.4.5"), "unknown_sop_class"),
        (lambda ds: setattr(ds, "PixelData", b"\0" * 10), "inconsistent_pixel_data"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_nothing_stored(ingest, change, code):
    ds = build.image()
    change(ds)
    with pytest.raises(VetpacsError) as exc:
        ingest(ds)
    assert exc.value.code == code
    assert Instance.objects.count() == 0 and Blob.objects.count() == 0
    assert PendingBlob.objects.count() == 0
    assert list(blobs.store().keys()) == []


def test_a_file_that_is_not_dicom_is_refused(clinic, tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"hello, this is not DICOM" * 10)
    with pytest.raises(VetpacsError) as exc:
        services.ingest_file(path, organisation_id=clinic.id)
    assert exc.value.code == "not_dicom"


def test_a_declared_checksum_that_does_not_match_is_refused(clinic, tmp_path):
    path = build.write(build.image(), tmp_path)
    with pytest.raises(VetpacsError) as exc:
        services.ingest_file(path, organisation_id=clinic.id, declared_sha256="0" * 64)
    assert exc.value.code == "checksum_mismatch"


@pytest.mark.requirement("R-7.3.4.5b")
@pytest.mark.requirement("R-7.3.4.1c")
def test_owner_identity_is_kept_apart_and_encrypted(ingest):
    ds = build.image(
        owner="王小明", animal="旺财", PatientTelephoneNumbers="13800138000", PatientAddress="北京市朝阳区"
    )
    ingest(ds)
    stored = _stored(Instance.objects.get())
    owner = Owner.objects.get()
    # The stored DICOM carries the pseudonym, never the owner's name, phone or address.
    assert str(stored.ResponsiblePerson) == owner.pseudonym
    assert str(stored.PatientName) == f"{owner.pseudonym}^旺财"
    assert "PatientTelephoneNumbers" not in stored and "PatientAddress" not in stored
    raw = (blobs.store().root / Instance.objects.get().blob.key).read_bytes()
    assert "王小明".encode() not in raw and b"13800138000" not in raw
    # The identity store holds ciphertext; the clinic can read it back and search it exactly.
    assert "王小明".encode() not in bytes(owner.name_enc)
    assert identity.reveal_owner(owner)["phone"] == "13800138000"
    found = identity.owner_pseudonyms_matching(
        organisation_ids={owner.organisation_id}, field="phone", value="13800138000"
    )
    assert found == [owner.pseudonym]
    originals = identity.originals_for_instances([str(ds.SOPInstanceUID)])[str(ds.SOPInstanceUID)]
    restored = pydicom.Dataset.from_json(originals)
    assert str(restored.PatientName) == "王小明^旺财"


def test_chinese_names_in_gb18030_are_accepted(ingest):
    ds = build.image(owner="李雷", animal="咪咪", charset="GB18030", species="Feline")
    ingest(ds)
    study = Study.objects.get()
    assert study.patient.animal_name == "咪咪"
    originals = identity.originals_for_studies([study.study_instance_uid])
    assert "李雷" in str(originals)


@pytest.mark.requirement("R-7.5c")
def test_a_lossy_original_is_kept_exactly_as_received(clinic, tmp_path):
    ds = build.image(bits=8, owner=None, species=None, breed=None)
    ds.PhotometricInterpretation = "MONOCHROME2"
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    img = io.BytesIO()
    Image.fromarray(ds.pixel_array).save(img, format="JPEG", quality=80)
    ds.PixelData = encapsulate([img.getvalue()])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    path = build.write(ds, tmp_path)
    services.ingest_file(path, organisation_id=clinic.id)
    inst = Instance.objects.get()
    with blobs.store().open(inst.blob.key) as f:
        assert f.read() == path.read_bytes()
    assert inst.transfer_syntax_uid == JPEGBaseline8Bit


@pytest.mark.requirement("R-6.1.3a")
def test_uncompressed_images_are_reencoded_jpegls_losslessly(ingest, django_capture_on_commit_callbacks):
    ds = build.image(rows=128, columns=96)
    ingest(ds)
    inst = Instance.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.compress(inst.id) is True
    inst.refresh_from_db()
    assert inst.transfer_syntax_uid == JPEGLSLossless
    assert inst.original_transfer_syntax_uid == "1.2.840.10008.1.2.1"
    stored = _stored(inst)
    assert (stored.pixel_array == ds.pixel_array).all()
    assert stored.SOPInstanceUID == ds.SOPInstanceUID, "compression must not change the instance's UID"
    assert Blob.objects.count() == 1 and len(list(blobs.store().keys())) == 1
    assert services.compress(inst.id) is False  # idempotent


def test_compression_is_queued_in_the_ingest_transaction(ingest):
    from django_tasks_db.models import DBTaskResult

    ingest(build.image())
    assert DBTaskResult.objects.filter(task_path__endswith="compress_instances").count() == 1


def test_another_organisation_cannot_reuse_a_study_uid(ingest, other_clinic):
    ds = build.image()
    ingest(ds)
    other = build.image(study_uid=ds.StudyInstanceUID)
    with pytest.raises(VetpacsError) as exc:
        ingest(other, organisation=other_clinic)
    assert exc.value.code == "uid_in_other_organisation"


def test_orphans_from_an_interrupted_write_are_swept(clinic):
    store = blobs.store()
    import io

    from vetpacs.storage import new_blob_key

    key = new_blob_key()
    PendingBlob.objects.create(key=key)
    store.put(key, io.BytesIO(b"half an upload"))
    assert services.sweep_orphans(older_than_seconds=0) == 1
    assert not store.exists(key) and PendingBlob.objects.count() == 0


def test_verify_reports_a_corrupted_blob(ingest):
    ingest(build.image())
    blob = Blob.objects.get()
    assert services.verify_blobs() == (1, [])
    path = blobs.store().root / blob.key
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    checked, problems = services.verify_blobs()
    assert checked == 1 and problems[0].key == blob.key


def test_spooled_uploads_left_by_a_crash_are_swept(clinic, settings):
    import os

    incoming = settings.VETPACS_INCOMING_DIR
    incoming.mkdir(parents=True, exist_ok=True)
    stale = incoming / "stow-crashed.part"
    stale.write_bytes(b"part of a body")
    os.utime(stale, (0, 0))
    fresh = incoming / "stow-in-flight.part"
    fresh.write_bytes(b"being written now")
    assert services.sweep_orphans() == 1
    assert not stale.exists() and fresh.exists(), "only leftovers older than the grace period go"


@pytest.mark.requirement("R-7.3.4.1e")
def test_destroying_a_clinics_keys_makes_its_owner_data_unreadable(ingest, clinic):
    ds = build.image(owner="王小明")
    ingest(ds)
    owner = Owner.objects.get()
    assert identity.reveal_owner(owner)["name"] == "王小明"
    assert identity.destroy_keys(clinic.id) == 1
    owner.refresh_from_db()
    owner.data_key.refresh_from_db()
    with pytest.raises(PermissionError):
        identity.reveal_owner(owner)
    # The stored images stay pseudonymised; the originals can no longer be put back.
    assert identity.originals_for_instances([str(ds.SOPInstanceUID)]) == {str(ds.SOPInstanceUID): {}}


@pytest.mark.requirement("R-7.3.4.5b")
def test_a_later_study_naming_the_owner_without_the_phone_keeps_the_animal_with_its_owner(ingest):
    ingest(build.image(owner="王小明", patient_id="PET-7", PatientTelephoneNumbers="13800138000"))
    first = Patient.objects.get(patient_id="PET-7").owner_pseudonym
    later = build.image(owner="王小明", patient_id="PET-7")  # the front desk left the phone out this time
    ingest(later)
    assert Patient.objects.get(patient_id="PET-7").owner_pseudonym == first
    assert Owner.objects.count() == 1
    # Both studies are found by the owner's phone, and the later file carries the same pseudonym.
    found = identity.owner_pseudonyms_matching(
        organisation_ids={Owner.objects.get().organisation_id}, field="phone", value="13800138000"
    )
    assert found == [first]
    assert Study.objects.filter(patient__owner_pseudonym__in=found).count() == 2
    assert (
        str(_stored(Instance.objects.get(sop_instance_uid=later.SOPInstanceUID)).ResponsiblePerson) == first
    )
    # What the later file said is what its clinic gets back: the name, and no phone it never had.
    originals = identity.originals_for_instances([str(later.SOPInstanceUID)])[str(later.SOPInstanceUID)]
    restored = pydicom.Dataset.from_json(originals)
    assert str(restored.ResponsiblePerson) == "王小明"
    assert "PatientTelephoneNumbers" not in restored


def test_a_study_naming_another_owner_moves_the_animal_to_that_owner(ingest):
    ingest(build.image(owner="王小明", patient_id="PET-8", PatientTelephoneNumbers="13800138000"))
    first = Patient.objects.get(patient_id="PET-8").owner_pseudonym
    ingest(build.image(owner="李雷", patient_id="PET-8"))
    moved = Patient.objects.get(patient_id="PET-8").owner_pseudonym
    assert moved != first
    assert identity.reveal_owner(Owner.objects.get(pseudonym=moved))["name"] == "李雷"
