"""The gateway's pipeline: validate, normalise, compress losslessly, protect the owner, write durably."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless

from tests.builders import dicom as build
from vetpacs.core.errors import VetpacsError
from vetpacs.gateway.pipeline import normalise, prepare
from vetpacs.gateway.protect import PLACEHOLDER, ProtectionError, load_recipient


@pytest.fixture
def recipient(settings, tmp_path):
    """The platform's certificate, made in a data dir of the test's own."""
    from vetpacs.apps.identity import envelope

    settings.DATA_DIR = tmp_path / "platform"
    envelope._pair.cache_clear()
    yield load_recipient(envelope.platform_public_key_pem())
    envelope._pair.cache_clear()


def _prepare(tmp_path, ds, **kwargs):
    received = build.write(ds, tmp_path)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return prepare(received, tmp_path / "ready.dcm", tmp_path / "tmp", **kwargs)


def test_bare_pet_name_gets_the_owner_as_family_name():
    ds = build.image(owner=None, animal="Lucky")
    ds.ResponsiblePerson = "Wang"
    changes = normalise(ds)
    assert str(ds.PatientName) == "Wang^Lucky"
    assert ds.ResponsiblePersonRole == "OWNER"
    assert changes


@pytest.mark.parametrize(
    ("typed", "canonical"), [("dog", "Canine"), ("犬", "Canine"), ("猫", "Feline"), ("Canine", "Canine")]
)
def test_species_typed_by_a_clinic_becomes_the_indexed_description(typed, canonical):
    ds = build.image(species=typed)
    normalise(ds)
    assert ds.PatientSpeciesDescription == canonical


def test_combined_sex_splits_into_sex_and_neutered():
    ds = build.image()
    ds.PatientSex = "FS"
    del ds.PatientSexNeutered
    normalise(ds)
    assert (ds.PatientSex, ds.PatientSexNeutered) == ("F", "ALTERED")


@pytest.mark.parametrize(
    ("typed", "value"), [("已绝育", "ALTERED"), ("intact", "UNALTERED"), ("Y", "ALTERED")]
)
def test_neutered_status_is_mapped_to_the_dicom_terms(typed, value):
    ds = build.image()
    ds.PatientSexNeutered = typed
    normalise(ds)
    assert ds.PatientSexNeutered == value


@pytest.mark.requirement("R-6.1.3a")
def test_uncompressed_image_is_compressed_to_jpeg_ls_lossless_with_the_same_uid_and_pixels(tmp_path):
    ds = build.image(rows=128, columns=96)
    prepared = _prepare(tmp_path, ds, compress=True)
    out = pydicom.dcmread(prepared.path)
    assert out.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert out.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(out.pixel_array, ds.pixel_array)
    assert [s["step"] for s in prepared.steps] == ["validated", "normalised", "compressed", "prepared"]


@pytest.mark.requirement("R-6.1.3a")
def test_lossy_original_is_kept_exactly_as_it_came(tmp_path):
    source = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    assert source.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    prepared = _prepare(tmp_path, source, compress=True)
    out = pydicom.dcmread(prepared.path)
    assert out.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert out.PixelData == source.PixelData
    assert "kept as received" in prepared.steps[2]["detail"]


def test_invalid_dataset_is_refused_with_the_reason(tmp_path):
    ds = build.image()
    ds.Rows = 999  # pixel data no longer matches
    with pytest.raises(VetpacsError) as exc:
        _prepare(tmp_path, ds)
    assert exc.value.code == "inconsistent_pixel_data"


@pytest.mark.requirement("R-6.1.3b")
def test_owner_identifiers_leave_only_encrypted(tmp_path, recipient):
    ds = build.image(owner="张伟", PatientTelephoneNumbers="13800138000", PatientAddress="北京市朝阳区")
    prepared = _prepare(tmp_path, ds, recipient=recipient)
    data = prepared.path.read_bytes()
    for secret in ("张伟", "13800138000", "北京市朝阳区"):
        assert secret.encode("utf-8") not in data
    out = pydicom.dcmread(prepared.path)
    assert out.ResponsiblePerson == PLACEHOLDER
    assert str(out.PatientName) == f"{PLACEHOLDER}^Lucky"
    assert "PatientTelephoneNumbers" not in out
    [item] = out.EncryptedAttributesSequence
    assert item.EncryptedContentTransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert "encrypted: " in prepared.steps[-2]["detail"]


@pytest.mark.requirement("R-6.1.3c")
def test_the_platform_opens_the_envelope_and_gets_the_originals_back(tmp_path, recipient):
    from vetpacs.apps.identity import envelope

    ds = build.image(owner="张伟", PatientTelephoneNumbers="13800138000")
    prepared = _prepare(tmp_path, ds, recipient=recipient)
    out = pydicom.dcmread(prepared.path)
    assert envelope.restore_encrypted_attributes(out)
    assert out.ResponsiblePerson == "张伟"
    assert str(out.PatientName) == "张伟^Lucky"
    assert out.PatientTelephoneNumbers == "13800138000"
    assert "EncryptedAttributesSequence" not in out


def test_an_envelope_for_another_platform_cannot_be_opened(tmp_path, recipient, settings):
    from vetpacs.apps.identity import envelope

    prepared = _prepare(tmp_path, build.image(owner="Li"), recipient=recipient)
    settings.DATA_DIR = tmp_path / "another-platform"
    envelope._pair.cache_clear()
    with pytest.raises(VetpacsError) as exc:
        envelope.open_encrypted_attributes(pydicom.dcmread(prepared.path))
    assert exc.value.code == "encrypted_attributes_unreadable"


def test_a_public_key_that_is_not_a_certificate_is_refused():
    with pytest.raises(ProtectionError):
        load_recipient(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_nothing_identifying_means_no_envelope(tmp_path, recipient):
    ds = build.image(owner=None, species=None)
    del ds.PatientName
    prepared = _prepare(tmp_path, ds, recipient=recipient)
    assert "EncryptedAttributesSequence" not in pydicom.dcmread(prepared.path)
    assert json.dumps(prepared.steps[-2]).count("no owner identifiers") == 1


@pytest.mark.parametrize("owner", ["A", "Ab", "Abc", "Abcd", "王", "王五", "欧阳娜娜"])
def test_envelope_of_any_length_opens_despite_the_even_length_padding(tmp_path, recipient, owner):
    from vetpacs.apps.identity import envelope

    prepared = _prepare(
        tmp_path, build.image(owner=owner, PatientAddress="x" * len(owner)), recipient=recipient
    )
    out = pydicom.dcmread(prepared.path)
    assert envelope.restore_encrypted_attributes(out)
    assert out.ResponsiblePerson == owner


@pytest.mark.requirement("R-6.1.2")
def test_his_record_fills_what_the_modality_left_blank_and_the_step_says_so(tmp_path):
    from vetpacs.gateway.records import RecordStore

    records = RecordStore(tmp_path / "records.sqlite3")
    records.put(
        source_id="hl7:HIS:1",
        kind="order",
        fields={
            "patient_id": "PET-9",
            "accession_number": "ACC-9",
            "species": "猫",
            "breed": "British  Shorthair",
            "owner": "Li^Na",
            "patient_sex": "FS",
            "referring_physician_name": "Zhou^Jie",
        },
    )
    ds = build.image(patient_id="PET-9", species=None, breed=None, owner=None, animal="Mimi")
    ds.AccessionNumber = "ACC-9"
    ds.ReferringPhysicianName = ""
    del ds.PatientSex
    prepared = _prepare(tmp_path, ds, compress=False, records=records)
    [enriched] = [s for s in prepared.steps if s["step"] == "enriched"]
    assert "PatientSpeciesDescription" in enriched["detail"]
    assert "ReferringPhysicianName" in enriched["detail"]
    out = pydicom.dcmread(prepared.path)
    # Filled from the record, then normalised like a modality's own values.
    assert out.PatientSpeciesDescription == "Feline"
    assert out.PatientBreedDescription == "British Shorthair"
    assert str(out.ResponsiblePerson) == "Li^Na" and str(out.PatientName) == "Li^Mimi"
    assert out.PatientSex == "F" and out.PatientSexNeutered == "ALTERED"
    assert str(out.ReferringPhysicianName) == "Zhou^Jie"


def test_what_the_modality_sent_wins_over_the_record(tmp_path):
    from vetpacs.gateway.records import RecordStore

    records = RecordStore(tmp_path / "records.sqlite3")
    records.put(source_id="csv:a:1", kind="patient", fields={"patient_id": "PET-001", "species": "Feline"})
    prepared = _prepare(tmp_path, build.image(species="Canine"), compress=False, records=records)
    assert pydicom.dcmread(prepared.path).PatientSpeciesDescription == "Canine"
    assert [s["detail"] for s in prepared.steps if s["step"] == "enriched"] == ["nothing from HIS records"]
