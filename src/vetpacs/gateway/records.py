"""Patient and order records from the HIS/RIS (HL7 v2, CSV, JSON), kept in the gateway's SQLite (R-6.1.2).

Records enrich studies that arrive later (patient name, species, breed, owner, requesting vet), found
by accession number first, then by Patient ID, and are uploaded to the platform as records. The
database is its own file (`records.sqlite3`), apart from the upload queue, so neither locks the other.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests
from pydicom import Dataset

from vetpacs.gateway.credentials import Credentials
from vetpacs.gateway.statefile import StateFile

RECORDS_FILE = "records.sqlite3"
RECORDS_PATH = "/api/v1/devices/records"
UPLOAD_BATCH = 500
# The attributes a record may carry, in the same snake_case as convert's sidecar (attributes.py).
FIELDS = (
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "patient_sex_neutered",
    "species",
    "breed",
    "owner",
    "owner_phone",
    "owner_address",
    "referring_physician_name",
    "accession_number",
    "study_description",
    "modality",
)
# Which DICOM attribute each field fills on a study that arrives without it.
_ENRICH = {
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "patient_sex_neutered": "PatientSexNeutered",
    "species": "PatientSpeciesDescription",
    "breed": "PatientBreedDescription",
    "owner": "ResponsiblePerson",
    "owner_phone": "PatientTelephoneNumbers",
    "owner_address": "PatientAddress",
    "referring_physician_name": "ReferringPhysicianName",
    "study_description": "StudyDescription",
}
_COLUMN_ALIASES = {
    "requesting_vet": "referring_physician_name",
    "vet": "referring_physician_name",
    "accession": "accession_number",
    "sex": "patient_sex",
    "name": "patient_name",
    "pet_name": "patient_name",
    "患宠编号": "patient_id",
    "宠物名": "patient_name",
    "物种": "species",
    "品种": "breed",
    "主人": "owner",
    "主人电话": "owner_phone",
    "电话": "owner_phone",
    "地址": "owner_address",
    "检查号": "accession_number",
    "申请医生": "referring_physician_name",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    source_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('patient', 'order')),
    patient_id TEXT NOT NULL,
    accession_number TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    received_at TEXT NOT NULL,
    uploaded_at TEXT
);
CREATE INDEX IF NOT EXISTS records_patient ON records (patient_id, received_at);
CREATE INDEX IF NOT EXISTS records_accession ON records (accession_number);
CREATE INDEX IF NOT EXISTS records_pending ON records (uploaded_at);
"""


class RecordError(ValueError):
    """A record cannot be stored (no Patient ID, an unknown kind, a file that is not CSV/JSON)."""


def normalise(raw: dict[str, Any]) -> dict[str, str]:
    """A record's fields under their canonical names, blanks dropped."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = _COLUMN_ALIASES.get(str(key).strip(), str(key).strip().lower())
        if name in FIELDS and value not in (None, ""):
            out[name] = str(value).strip()
    return out


class RecordStore(StateFile):
    """HIS records by source id; a record acknowledged (HL7 AA) survives power loss."""

    SCHEMA = _SCHEMA

    def put(self, *, source_id: str, kind: str, fields: dict[str, Any]) -> dict[str, str]:
        """Store (or replace) one record; a later message for the same source id updates it."""
        data = normalise(fields)
        if kind not in ("patient", "order"):
            raise RecordError(f"kind must be patient or order, not {kind!r}")
        if not data.get("patient_id"):
            raise RecordError("a record needs a Patient ID (患宠编号)")
        now = dt.datetime.now(dt.UTC).isoformat()
        with self._db() as db:
            db.execute(
                "INSERT INTO records (source_id, kind, patient_id, accession_number, data, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source_id) DO UPDATE SET kind = excluded.kind,"
                " patient_id = excluded.patient_id, accession_number = excluded.accession_number,"
                " data = excluded.data, received_at = excluded.received_at, uploaded_at = NULL",
                (
                    source_id,
                    kind,
                    data["patient_id"],
                    data.get("accession_number", ""),
                    json.dumps(data, ensure_ascii=False),
                    now,
                ),
            )
        return data

    def lookup(self, *, patient_id: str = "", accession_number: str = "") -> dict[str, str]:
        """What the records know of a study: its order (by accession), over its patient (newest first)."""
        merged: dict[str, str] = {}
        with self._db() as db:
            rows: list[tuple[str]] = []
            if patient_id:
                rows += db.execute(
                    "SELECT data FROM records WHERE patient_id = ? ORDER BY received_at", (patient_id,)
                ).fetchall()
            if accession_number:
                rows += db.execute(
                    "SELECT data FROM records WHERE accession_number = ? ORDER BY received_at",
                    (accession_number,),
                ).fetchall()
        for (data,) in rows:  # later rows (newer, then the order itself) win
            merged.update(json.loads(data))
        return merged

    def enrich(self, ds: Dataset) -> list[str]:
        """Fill what the dataset leaves blank from the records; returns the keywords it filled."""
        found = self.lookup(
            patient_id=str(ds.get("PatientID", "") or ""),
            accession_number=str(ds.get("AccessionNumber", "") or ""),
        )
        filled = []
        for name, keyword in _ENRICH.items():
            if found.get(name) and not str(ds.get(keyword, "") or "").strip():
                setattr(ds, keyword, found[name])
                filled.append(keyword)
        if "ResponsiblePerson" in filled and not ds.get("ResponsiblePersonRole"):
            ds.ResponsiblePersonRole = "OWNER"
        return filled

    def pending(self, limit: int = UPLOAD_BATCH) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT source_id, kind, patient_id, accession_number, data FROM records"
                " WHERE uploaded_at IS NULL ORDER BY received_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {"source_id": s, "kind": k, "patient_id": p, "accession_number": a, "data": json.loads(d)}
            for s, k, p, a, d in rows
        ]

    def mark_uploaded(self, source_ids: Iterable[str]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        with self._db() as db:
            db.executemany(
                "UPDATE records SET uploaded_at = ? WHERE source_id = ?", [(now, s) for s in source_ids]
            )

    def upload(self, credentials: Credentials, *, session: requests.Session | None = None) -> int:
        """Send records not yet on the platform; returns how many went. Raises on a refusal."""
        http = session or requests.Session()
        sent = 0
        while batch := self.pending():
            resp = http.post(
                credentials.url(RECORDS_PATH),
                json={"records": batch},
                headers={"Authorization": credentials.authorization},
                timeout=60,
            )
            if resp.status_code != 201:
                raise RecordError(f"the platform refused the records ({resp.status_code}): {resp.text[:300]}")
            self.mark_uploaded(r["source_id"] for r in batch)
            sent += len(batch)
        return sent

    # -- the CSV/JSON drop folder -----------------------------------------------------------------
    def import_file(self, path: Path) -> int:
        """Store every record of a CSV (header row) or JSON (a list, or {"records": [...]}) file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows = _read_csv(path)
        elif suffix == ".json":
            rows = _read_json(path)
        else:
            raise RecordError(f"{path.name}: a drop folder takes .csv or .json files")
        count = 0
        for n, row in enumerate(rows, start=1):
            kind = str(row.get("kind") or ("order" if normalise(row).get("accession_number") else "patient"))
            try:
                self.put(source_id=f"{suffix[1:]}:{path.name}:{n}", kind=kind, fields=row)
            except RecordError as exc:
                raise RecordError(f"{path.name} record {n}: {exc}") from exc
            count += 1
        return count


def _read_csv(path: Path) -> list[dict[str, Any]]:
    # utf-8-sig: Excel on a clinic PC writes a byte-order mark; GB18030 for older Chinese exports.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with open(path, newline="", encoding=encoding) as f:
                return list(csv.DictReader(f))
        except UnicodeDecodeError:
            continue
    raise RecordError(f"{path.name}: the CSV is neither UTF-8 nor GB18030")


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RecordError(f"{path.name}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("records")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RecordError(f'{path.name}: expected a list of records or {{"records": [...]}}')
    return data
