"""Patient, study and series attributes for converted objects, taken from a sidecar JSON or an order record.

A sidecar is `<file>.json` beside the file (`photo.jpg.json`, or `photo.json`), holding snake_case
names (`patient_id`, `species`, ...) or DICOM keywords (`PatientID`, `PatientSpeciesDescription`, ...).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydicom import Dataset

from vetpacs.core.ids import is_valid_uid, new_uid


class ConversionError(Exception):
    """The file or its attributes cannot make a valid DICOM object; the message names the problem."""


# snake_case name -> DICOM keyword. Owner is DICOM's Responsible Person; the requesting vet is the
# Referring Physician (as HIS orders name it).
_KEYWORDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "patient_sex_neutered": "PatientSexNeutered",
    "species": "PatientSpeciesDescription",
    "breed": "PatientBreedDescription",
    "owner": "ResponsiblePerson",
    "referring_physician_name": "ReferringPhysicianName",
    "accession_number": "AccessionNumber",
    "study_instance_uid": "StudyInstanceUID",
    "study_id": "StudyID",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "study_description": "StudyDescription",
    "series_instance_uid": "SeriesInstanceUID",
    "series_number": "SeriesNumber",
    "series_description": "SeriesDescription",
    "modality": "Modality",
    "body_part_examined": "BodyPartExamined",
    "institution_name": "InstitutionName",
}
_ALIASES = {"requesting_vet": "referring_physician_name", "species_description": "species"}
_KEYWORD_TO_NAME = {v: k for k, v in _KEYWORDS.items()}


@dataclass
class StudyAttributes:
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    patient_sex_neutered: str = ""
    species: str = ""
    breed: str = ""
    owner: str = ""
    referring_physician_name: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    series_instance_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    body_part_examined: str = ""
    institution_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> StudyAttributes:
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key, _KEYWORD_TO_NAME.get(key, key))
            if name not in known:
                continue  # a sidecar may carry notes of its own; they are not DICOM attributes
            if value is None:
                continue
            if not isinstance(value, str | int):
                raise ConversionError(f"sidecar attribute {key!r} must be text, not {type(value).__name__}")
            values[name] = str(value).strip()
        attrs = cls(**values)
        attrs.check()
        return attrs

    def check(self) -> None:
        for name in ("study_instance_uid", "series_instance_uid"):
            value = getattr(self, name)
            if value and not is_valid_uid(value):
                raise ConversionError(f"{name} {value!r} is not a valid DICOM UID")
        if self.patient_sex and self.patient_sex not in ("M", "F", "O"):
            raise ConversionError(f"patient_sex must be M, F or O, not {self.patient_sex!r}")
        if self.patient_sex_neutered and self.patient_sex_neutered not in ("ALTERED", "UNALTERED"):
            raise ConversionError("patient_sex_neutered must be ALTERED or UNALTERED")
        for name in ("study_date", "patient_birth_date"):
            value = getattr(self, name)
            if value:
                try:
                    dt.datetime.strptime(value, "%Y%m%d")
                except ValueError:
                    raise ConversionError(f"{name} must be YYYYMMDD, not {value!r}") from None
        if self.series_number and not self.series_number.isdigit():
            raise ConversionError(f"series_number must be a whole number, not {self.series_number!r}")
        if not self.patient_id:
            raise ConversionError("patient_id is required (sidecar JSON, order record or --patient-id)")

    def merged_with(self, other: StudyAttributes) -> StudyAttributes:
        """These attributes, with blanks filled from `other` (an order record fills what a sidecar lacks)."""
        out = StudyAttributes(**{f.name: getattr(self, f.name) for f in fields(self)})
        for f in fields(self):
            if f.name != "extra" and not getattr(out, f.name):
                setattr(out, f.name, getattr(other, f.name))
        return out

    def apply(self, ds: Dataset, *, default_modality: str, now: dt.datetime | None = None) -> None:
        """Set the Patient, Study and Series attributes on `ds`, generating what the source did not give."""
        now = now or dt.datetime.now()
        ds.PatientID = self.patient_id
        ds.PatientName = self.patient_name
        ds.PatientBirthDate = self.patient_birth_date
        ds.PatientSex = self.patient_sex
        ds.StudyInstanceUID = self.study_instance_uid or new_uid()
        ds.StudyID = self.study_id
        ds.StudyDate = self.study_date or now.strftime("%Y%m%d")
        ds.StudyTime = self.study_time or now.strftime("%H%M%S")
        ds.AccessionNumber = self.accession_number
        ds.ReferringPhysicianName = self.referring_physician_name
        if self.study_description:
            ds.StudyDescription = self.study_description
        ds.SeriesInstanceUID = self.series_instance_uid or new_uid()
        ds.SeriesNumber = int(self.series_number) if self.series_number else 1
        if self.series_description:
            ds.SeriesDescription = self.series_description
        ds.Modality = self.modality or default_modality
        if self.body_part_examined:
            ds.BodyPartExamined = self.body_part_examined
        if self.institution_name:
            ds.InstitutionName = self.institution_name
        # PS3.3 C.7.1.1: a non-human patient carries species, breed and the responsible person
        # (type 1C/2C when the Patient Species Description is present).
        ds.PatientSpeciesDescription = self.species or "UNKNOWN"
        ds.PatientBreedDescription = self.breed
        ds.PatientBreedCodeSequence = []
        ds.BreedRegistrationSequence = []
        ds.ResponsiblePerson = self.owner
        ds.ResponsiblePersonRole = "OWNER"
        ds.ResponsibleOrganization = ""
        ds.PatientSexNeutered = self.patient_sex_neutered
        if default_modality != "DOC":
            # PS3.3 C.7.3.1: Laterality is type 2C for a paired body part; unknown for a collected file.
            ds.Laterality = ""
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names and owners


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar JSON of a file (`<name>.<ext>.json` or `<name>.json`), or None when there is none."""
    path = Path(path)
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConversionError(f"{candidate.name}: the sidecar is not valid JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise ConversionError(f"{candidate.name}: the sidecar must be a JSON object")
            return data
    return None


def sidecar_path(path: Path) -> Path | None:
    path = Path(path)
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            return candidate
    return None
