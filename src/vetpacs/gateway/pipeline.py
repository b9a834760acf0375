"""What happens to a received instance before upload, each step recorded on its queue entry.

validate (vetpacs.dicom.parse) -> enrich from the HIS/RIS records (R-6.1.2: what the modality left
blank, by accession number or Patient ID) -> normalise veterinary attributes -> compress to JPEG-LS lossless
when uncompressed (R-6.1.3a; lossy originals untouched, SOP Instance UID kept) -> protect the
owner's identity (R-6.1.3b/c, gateway/protect.py) -> the file to upload, written durably to the
spool's ready/ folder with its SHA-256. The received file stays until the platform confirms.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from vetpacs.core.errors import VetpacsError
from vetpacs.dicom import codecs
from vetpacs.dicom.parse import read_dataset, validate
from vetpacs.gateway.protect import protect_identity
from vetpacs.gateway.records import RecordStore
from vetpacs.gateway.spool import write_durably

# Species as clinics type them -> the description the platform indexes (PS3.16 CID 7454 meanings).
SPECIES = {
    "canine": "Canine",
    "dog": "Canine",
    "canis familiaris": "Canine",
    "犬": "Canine",
    "狗": "Canine",
    "feline": "Feline",
    "cat": "Feline",
    "felis catus": "Feline",
    "猫": "Feline",
    "equine": "Equine",
    "horse": "Equine",
    "马": "Equine",
    "rabbit": "Rabbit",
    "兔": "Rabbit",
    "avian": "Avian",
    "bird": "Avian",
    "鸟": "Avian",
    "bovine": "Bovine",
    "cow": "Bovine",
    "牛": "Bovine",
    "porcine": "Porcine",
    "pig": "Porcine",
    "猪": "Porcine",
    "ovine": "Ovine",
    "sheep": "Ovine",
    "羊": "Ovine",
}
# Patient Sex Neutered (0010,2203) takes ALTERED or UNALTERED (PS3.3 C.7.1.1).
NEUTERED = {
    "altered": "ALTERED",
    "neutered": "ALTERED",
    "spayed": "ALTERED",
    "castrated": "ALTERED",
    "y": "ALTERED",
    "yes": "ALTERED",
    "已绝育": "ALTERED",
    "绝育": "ALTERED",
    "unaltered": "UNALTERED",
    "intact": "UNALTERED",
    "n": "UNALTERED",
    "no": "UNALTERED",
    "未绝育": "UNALTERED",
}
# Practice software often writes sex and neuter status together in Patient's Sex.
COMBINED_SEX = {
    "MN": ("M", "ALTERED"),
    "MC": ("M", "ALTERED"),
    "FS": ("F", "ALTERED"),
    "FN": ("F", "ALTERED"),
}


@dataclass
class Prepared:
    path: Path
    sha256: str
    size: int
    steps: list[dict[str, Any]] = field(default_factory=list)


def _step(steps: list[dict[str, Any]], name: str, detail: str) -> None:
    steps.append({"step": name, "at": time.time(), "detail": detail})


def normalise(ds: Dataset) -> list[str]:
    """Veterinary attributes in the form the platform indexes; the changes made, for the record."""
    changes: list[str] = []
    owner = str(ds.get("ResponsiblePerson") or "").strip()
    name = str(ds.get("PatientName") or "").strip()
    pn = PersonName(name)
    # PS3.3 C.7.1.1 (veterinary): Patient's Name is 'Owner^Pet'. A bare pet name gets the owner.
    if owner and name and "^" not in name:
        # The owner's family name (a record may carry the owner as 'Family^Given').
        ds.PatientName = f"{PersonName(owner).family_name or owner}^{name}"
        changes.append(f"PatientName: {name!r} -> 'Owner^Pet'")
    elif owner and not name:
        ds.PatientName = f"{owner}^"
        changes.append("PatientName: set from ResponsiblePerson")
    elif not owner and pn.family_name and pn.given_name and "PatientSpeciesDescription" in ds:
        ds.ResponsiblePerson = str(pn.family_name)
        changes.append("ResponsiblePerson: from Patient's Name")
    if "ResponsiblePerson" in ds and not ds.get("ResponsiblePersonRole"):
        ds.ResponsiblePersonRole = "OWNER"
    species = str(ds.get("PatientSpeciesDescription") or "").strip()
    canonical = SPECIES.get(species.lower())
    if canonical and canonical != species:
        ds.PatientSpeciesDescription = canonical
        changes.append(f"PatientSpeciesDescription: {species!r} -> {canonical!r}")
    breed = str(ds.get("PatientBreedDescription") or "")
    if breed and breed != " ".join(breed.split()):
        ds.PatientBreedDescription = " ".join(breed.split())
        changes.append("PatientBreedDescription: whitespace tidied")
    sex = str(ds.get("PatientSex") or "").strip().upper()
    if sex in COMBINED_SEX:
        ds.PatientSex, neutered = COMBINED_SEX[sex]
        if not ds.get("PatientSexNeutered"):
            ds.PatientSexNeutered = neutered
        changes.append(f"PatientSex: {sex!r} -> {ds.PatientSex!r} + PatientSexNeutered")
    raw = str(ds.get("PatientSexNeutered") or "").strip()
    mapped = NEUTERED.get(raw.lower())
    if mapped and mapped != raw:
        ds.PatientSexNeutered = mapped
        changes.append(f"PatientSexNeutered: {raw!r} -> {mapped!r}")
    elif raw and raw not in ("ALTERED", "UNALTERED"):
        del ds.PatientSexNeutered  # an unknown value would fail validation at every reader
        changes.append(f"PatientSexNeutered: {raw!r} is not ALTERED/UNALTERED, removed")
    return changes


def prepare(
    received: Path,
    out: Path,
    tmp_dir: Path,
    *,
    compress: bool = True,
    recipient: x509.Certificate | None = None,
    records: RecordStore | None = None,
) -> Prepared:
    """Run the pipeline on one received file; raises VetpacsError naming a refusal."""
    steps: list[dict[str, Any]] = []
    ds = read_dataset(received, defer=False)
    validate(ds)
    _step(steps, "validated", f"{ds.SOPClassUID} {ds.file_meta.TransferSyntaxUID}")
    if records is not None:
        # Before normalising, so a record's 犬 or MN is normalised like the modality's own values.
        filled = records.enrich(ds)
        _step(
            steps,
            "enriched",
            ("from HIS records: " + ", ".join(filled)) if filled else "nothing from HIS records",
        )
    changes = normalise(ds)
    _step(steps, "normalised", "; ".join(changes) or "nothing to change")
    ts = str(ds.file_meta.TransferSyntaxUID)
    if compress and codecs.can_compress(ds):
        # The pixel-exact check decodes with CharLS (pyjpegls): about twice as fast as libjpeg here.
        ds.pixel_array_options(decoding_plugin="pyjpegls")
        codecs.compress_jpegls(ds)  # raises if the round trip is not pixel-exact (R-7.5c)
        _step(steps, "compressed", f"{ts} -> {codecs.STORAGE_SYNTAX} (JPEG-LS lossless)")
    elif not codecs.is_uncompressed(ts):
        _step(steps, "compressed", f"kept as received ({ts})")
    else:
        _step(steps, "compressed", "not compressible losslessly here; kept uncompressed")
    if recipient is not None:
        moved = protect_identity(ds, recipient)
        _step(steps, "protected", ("encrypted: " + ", ".join(moved)) if moved else "no owner identifiers")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    write_durably(out, data, tmp_dir)
    sha = hashlib.sha256(data).hexdigest()
    _step(steps, "prepared", f"{len(data)} bytes, sha256 {sha}")
    return Prepared(out, sha, len(data), steps)


__all__ = ["Prepared", "VetpacsError", "normalise", "prepare"]
