"""Build DICOM datasets in code, so each test shows the attributes it depends on."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SOP_CLASSES = {
    "DX": DigitalXRayImageStorageForPresentation,
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "CT": CTImageStorage,
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "OT": SecondaryCaptureImageStorage,
}


def image(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str = "DX",
    rows: int = 64,
    columns: int = 64,
    bits: int = 16,
    pixels: np.ndarray | None = None,
    patient_id: str = "PET-001",
    animal: str = "Lucky",
    owner: str | None = "Zhang",
    species: str | None = "Canine",
    breed: str | None = "Beagle",
    charset: str = "ISO_IR 192",
    transfer_syntax: str = ExplicitVRLittleEndian,
    **attrs: Any,
) -> Dataset:
    """A veterinary image: Patient's Name 'Owner^Pet', species and breed, owner as Responsible Person."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    sop_uid = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = f"{owner}^{animal}" if owner else animal
    ds.PatientID = patient_id
    ds.PatientBirthDate = "20200101"
    ds.PatientSex = "M"
    if species:
        ds.PatientSpeciesDescription = species
    if breed:
        ds.PatientBreedDescription = breed
    if owner:
        ds.ResponsiblePerson = owner
        ds.ResponsiblePersonRole = "OWNER"
    ds.PatientSexNeutered = "ALTERED"
    ds.StudyDate = "20261201"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC001"
    ds.StudyID = "1"
    ds.StudyDescription = "Thorax"
    ds.ReferringPhysicianName = "Vet^Li"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    if pixels is None:
        rng = np.random.default_rng(abs(hash(sop_uid)) % 2**32)
        dtype = np.uint16 if bits == 16 else np.uint8
        pixels = rng.integers(0, 4000 if bits == 16 else 255, (rows, columns), dtype=dtype)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.2, 0.2]
    ds.WindowCenter = 2000 if bits == 16 else 128
    ds.WindowWidth = 4000 if bits == 16 else 256
    ds.PixelData = pixels.tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write(ds: Dataset, folder: Path, name: str | None = None) -> Path:
    path = folder / (name or f"{uuid.uuid4().hex}.dcm")
    path.write_bytes(to_bytes(ds))
    return path


def study(n: int = 3, **kwargs: Any) -> list[Dataset]:
    """n instances of one study and series."""
    study_uid, series_uid = generate_uid(), generate_uid()
    return [
        image(study_uid=study_uid, series_uid=series_uid, InstanceNumber=i + 1, **kwargs) for i in range(n)
    ]
