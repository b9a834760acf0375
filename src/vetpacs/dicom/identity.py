"""Owner identity: which attributes identify the owner, and how to swap them for a pseudonym and back.

In veterinary DICOM the owner is the Responsible Person (0010,2297) and Patient's Name is written
'Owner^Pet' (PS3.3 C.7.1.1, veterinary usage), so the family-name component is the owner's too.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

# Attributes that carry the owner's (or a human patient's) personal information.
OWNER_KEYWORDS = (
    "ResponsiblePerson",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "ResponsibleOrganization",
)


def is_veterinary(ds: Dataset) -> bool:
    return any(
        k in ds for k in ("PatientSpeciesDescription", "PatientSpeciesCodeSequence", "ResponsiblePerson")
    )


def owner_fields(ds: Dataset) -> dict[str, str]:
    """The owner's personal fields as plain text, for the identity store."""
    name = str(ds.get("ResponsiblePerson") or "").strip()
    if not name and is_veterinary(ds):
        name = str(PersonName(str(ds.get("PatientName") or "")).family_name or "").strip()
    phones = ds.get("PatientTelephoneNumbers")
    phone = str(phones[0] if isinstance(phones, list | tuple) or _is_multi(phones) else phones or "")
    return {
        "name": name,
        "phone": phone.strip(),
        "address": str(ds.get("PatientAddress") or "").strip(),
    }


def _is_multi(value: Any) -> bool:
    return value.__class__.__name__ == "MultiValue"


def split_identity(ds: Dataset, pseudonym: str) -> dict[str, Any]:
    """Replace owner identifiers in ds with the pseudonym; return the originals as DICOM JSON.

    An empty dict means nothing identifying was present and ds is unchanged.
    """
    originals: dict[str, Any] = {}
    for keyword in OWNER_KEYWORDS:
        if keyword in ds and ds[keyword].value not in (None, "", []):
            elem = ds[keyword]
            originals[f"{elem.tag:08X}"] = elem.to_json_dict(None, 0)
            if keyword == "ResponsiblePerson":
                ds.ResponsiblePerson = pseudonym
            else:
                del ds[keyword]
    if is_veterinary(ds) and ds.get("PatientName"):
        pn = PersonName(str(ds.PatientName))
        if pn.family_name and pn.family_name != pseudonym:
            elem = ds["PatientName"]
            originals[f"{elem.tag:08X}"] = elem.to_json_dict(None, 0)
            ds.PatientName = f"{pseudonym}^{pn.given_name}" if pn.given_name else pseudonym
    return originals


def restore_identity(ds: Dataset, originals: dict[str, Any]) -> Dataset:
    """Put the original owner attributes back (for users of the owning clinic)."""
    if not originals:
        return ds
    restored = Dataset.from_json(originals)
    for elem in restored:
        ds[elem.tag] = elem
    return ds


def restore_json(metadata: dict[str, Any], originals: dict[str, Any]) -> dict[str, Any]:
    """The same, on a DICOM JSON object (QIDO results, WADO metadata)."""
    if not originals:
        return metadata
    out = dict(metadata)
    out.update(originals)
    return dict(sorted(out.items()))
