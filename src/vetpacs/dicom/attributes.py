"""What the archive indexes from a dataset, level by level, and its DICOM JSON metadata."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# Placeholder URI for bulk data in stored metadata; WADO-RS rewrites it to an absolute URL.
BULK_PREFIX = "bulk:"
# Elements at least this large go out as BulkDataURI in metadata (PS3.18 F.2.6).
BULK_THRESHOLD = 1024

PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "PatientSexNeutered",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientWeight",
    "PatientAge",
    "OtherPatientIDsSequence",
    "PatientComments",
)
STUDY_KEYWORDS = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName",
    "StudyDescription",
    "StudyInstanceUID",
    "StudyID",
    "InstitutionName",
    "ProcedureCodeSequence",
    *PATIENT_KEYWORDS,
)
SERIES_KEYWORDS = (
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "Laterality",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
    "Manufacturer",
    "StationName",
    "InstitutionName",
)


def text(ds: Dataset, keyword: str, limit: int | None = None) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        value = "\\".join(str(v) for v in value)
    out = str(value).strip()
    return out[:limit] if limit else out


def integer(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def decimal(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def date(ds: Dataset, keyword: str) -> dt.date | None:
    value = text(ds, keyword)
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date() if len(value) >= 8 else None
    except ValueError:
        return None


def time(ds: Dataset, keyword: str) -> dt.time | None:
    value = text(ds, keyword).split(".")[0]
    if len(value) < 2 or not value.isdigit():
        return None
    value = value.ljust(6, "0")
    try:
        return dt.time(int(value[0:2]), int(value[2:4]), int(value[4:6]))
    except ValueError:
        return None


def code_value(ds: Dataset, sequence_keyword: str) -> str:
    seq = ds.get(sequence_keyword)
    if not seq:
        return ""
    item = seq[0]
    return f"{item.get('CodingSchemeDesignator', '')}:{item.get('CodeValue', '')}".strip(":")


BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def metadata_json(ds: Dataset) -> dict[str, Any]:
    """The dataset as DICOM JSON; large top-level binary values become bulk-data placeholders.

    Only top-level elements get a BulkDataURI (their URL names one tag); large values nested in
    sequences (icon images, say) are kept inline so no URI ever points at the wrong element.

    Small elements still as read from the file are looked up by their bytes first: the instances
    of one series repeat most of their attributes, and converting an element is what costs.
    """
    out: dict[str, Any] = {}
    charset = ds.get_item(0x00080005)
    charset_bytes = getattr(charset, "value", None) if charset is not None else None
    for raw in ds.elements():
        key = f"{raw.tag:08X}"
        if isinstance(raw, RawDataElement) and _cacheable(raw):
            memo = (raw.tag, raw.VR, raw.value, raw.is_implicit_VR, raw.is_little_endian, repr(charset_bytes))
            cached = _json_memo.get(memo)
            if cached is None:
                cached = _element_json(ds[raw.tag])
                if len(_json_memo) >= JSON_MEMO_ENTRIES:
                    _json_memo.clear()
                _json_memo[memo] = cached
            out[key] = cached
            continue
        out[key] = _element_json(ds[raw.tag])
    return dict(sorted(out.items()))


# Converted elements by (tag, VR, bytes, syntax, character set); values are shared, never changed.
JSON_MEMO_ENTRIES = 8192
JSON_MEMO_VALUE_BYTES = 256
_json_memo: dict[tuple[Any, ...], dict[str, Any]] = {}


def _cacheable(raw: RawDataElement) -> bool:
    # Private elements are left out: their VR may depend on the creator element beside them.
    value = raw.value
    return (
        value is not None
        and len(value) <= JSON_MEMO_VALUE_BYTES
        and raw.VR != "SQ"
        and raw.length != 0xFFFFFFFF
        and not raw.tag.is_private
    )


def _element_json(elem: Any) -> dict[str, Any]:
    if elem.VR in BINARY_VRS and _length(elem) >= BULK_THRESHOLD:
        return {"vr": elem.VR, "BulkDataURI": f"{BULK_PREFIX}{elem.tag:08X}"}
    result: dict[str, Any] = elem.to_json_dict(None, 2**62)
    return result


def _length(elem: Any) -> int:
    length = getattr(elem, "length", None)
    if length is not None and length != 0xFFFFFFFF and not isinstance(elem.value, bytes | bytearray):
        return int(length)
    value = elem.value
    return len(value) if isinstance(value, bytes | bytearray) else BULK_THRESHOLD


def subset_json(full: dict[str, Any], keywords: tuple[str, ...]) -> dict[str, Any]:
    from pydicom.datadict import tag_for_keyword

    out: dict[str, Any] = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is not None:
            key = f"{tag:08X}"
            if key in full:
                out[key] = full[key]
    return out
