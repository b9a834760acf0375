"""Archive use cases: ingest (shared by STOW-RS, `vetpacs import` and gateway uploads), verify, sweep.

Crash safety (kill -9 at any point): the blob's key is recorded as pending, then the bytes are
written (temporary name, fsync, rename), then one transaction indexes the instance and clears the
pending row. The index never points at a missing blob; a blob left behind by a crash is named by
its pending row and swept; repeating the same upload is an idempotent success.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from pydicom import dcmwrite
from pydicom.valuerep import PersonName

from vetpacs.apps.archive import blobs
from vetpacs.apps.archive.models import (
    Blob,
    Instance,
    InstanceVersion,
    Patient,
    PendingBlob,
    Series,
    Study,
)
from vetpacs.apps.audit import services as audit
from vetpacs.apps.identity import services as identity
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.dicom import attributes as A
from vetpacs.dicom import codecs
from vetpacs.dicom.identity import is_veterinary, owner_fields, split_identity
from vetpacs.dicom.parse import read_dataset, validate
from vetpacs.storage.base import CHUNK_SIZE, new_blob_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    status: str  # stored | duplicate | replaced
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    instance_id: int


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
    return h.hexdigest()


def ingest_file(
    path: str | os.PathLike[str],
    *,
    organisation_id: int,
    actor: str = "system",
    user_id: int | None = None,
    ip: str | None = None,
    source: str = "import",
    expected_study_uid: str | None = None,
    declared_sha256: str | None = None,
    sha256: str | None = None,
) -> IngestResult:
    """Archive one DICOM file from a local path. Raises VetpacsError naming what was wrong."""
    path = Path(path)
    received_sha = sha256 or file_sha256(path)
    if declared_sha256 and declared_sha256.lower() != received_sha:
        raise VetpacsError(
            Errors.CHECKSUM_MISMATCH,
            f"declared SHA-256 {declared_sha256} but the received bytes hash to {received_sha}",
        )
    ds = read_dataset(path)
    validate(ds)
    sop_uid = str(ds.SOPInstanceUID)
    study_uid = str(ds.StudyInstanceUID)
    series_uid = str(ds.SeriesInstanceUID)
    if expected_study_uid and study_uid != expected_study_uid:
        raise VetpacsError(
            Errors.STUDY_UID_MISMATCH,
            f"instance {sop_uid} belongs to study {study_uid}, not {expected_study_uid}",
        )

    existing = _existing(sop_uid, organisation_id, received_sha)
    if existing is not None:
        return existing
    _check_ownership(organisation_id, study_uid, series_uid)

    # Identity: owner identifiers go to the identity store; the stored file carries a pseudonym.
    owner = identity.find_or_create_owner(organisation_id=organisation_id, fields=owner_fields(ds))
    pseudonym = owner.pseudonym if owner else identity.new_pseudonym()
    originals = split_identity(ds, pseudonym)
    metadata = A.metadata_json(ds)

    key = new_blob_key()
    PendingBlob.objects.create(key=key)
    store = blobs.store()
    try:
        if originals:
            info = _put_dataset(store, key, ds)
        else:
            # Nothing to change: keep the received bytes exactly (lossy originals stay as they came).
            with path.open("rb") as f:
                info = store.put(key, f)
        result = _index(
            ds=ds,
            metadata=metadata,
            originals=originals,
            owner=owner,
            key=key,
            info=info,
            organisation_id=organisation_id,
            received_sha=received_sha,
            received_size=path.stat().st_size,
            actor=actor,
            user_id=user_id,
            ip=ip,
            source=source,
        )
    except IntegrityError:
        # Someone stored the same instance at the same moment: judge it as a repeat.
        _discard(store, key)
        existing = _existing(sop_uid, organisation_id, received_sha)
        if existing is None:
            raise
        return existing
    except BaseException:
        _discard(store, key)
        raise
    return result


def _discard(store: Any, key: str) -> None:
    with contextlib.suppress(Exception):
        store.delete(key)
        PendingBlob.objects.filter(key=key).delete()


def _put_dataset(store: Any, key: str, ds: Any) -> Any:
    incoming = Path(settings.VETPACS_INCOMING_DIR)
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=incoming) as tmp:
        dcmwrite(tmp, ds, enforce_file_format=True)
        tmp.seek(0)
        return store.put(key, tmp)


def _existing(sop_uid: str, organisation_id: int, received_sha: str) -> IngestResult | None:
    inst = Instance.objects.filter(sop_instance_uid=sop_uid).select_related("study", "series").first()
    if inst is None:
        return None
    if inst.study.organisation_id != organisation_id:
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"SOP Instance UID {sop_uid} is already used by another organisation's data",
        )
    if inst.original_sha256 == received_sha:
        return _result("duplicate", inst)
    if settings.VETPACS_KEEP_VERSIONS:
        return None
    raise VetpacsError(
        Errors.DUPLICATE_INSTANCE,
        f"SOP Instance UID {sop_uid} is already stored with different content "
        f"(stored SHA-256 {inst.original_sha256}, received {received_sha})",
    )


def _check_ownership(organisation_id: int, study_uid: str, series_uid: str) -> None:
    if Study.objects.filter(study_instance_uid=study_uid).exclude(organisation_id=organisation_id).exists():
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"Study Instance UID {study_uid} is already used by another organisation's data",
        )
    clash = Series.objects.filter(series_instance_uid=series_uid).exclude(study__study_instance_uid=study_uid)
    if clash.exists():
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"Series Instance UID {series_uid} already belongs to a different study",
        )


def _result(status: str, inst: Instance) -> IngestResult:
    return IngestResult(
        status=status,
        sop_class_uid=inst.sop_class_uid,
        sop_instance_uid=inst.sop_instance_uid,
        study_instance_uid=inst.study.study_instance_uid,
        series_instance_uid=inst.series.series_instance_uid,
        instance_id=inst.id,
    )


def _patient_fields(ds: Any) -> dict[str, Any]:
    pn = PersonName(A.text(ds, "PatientName"))
    animal = (pn.given_name if is_veterinary(ds) else "") or str(pn)
    return {
        "patient_name": A.text(ds, "PatientName", 200),
        "animal_name": str(animal)[:200],
        "species_description": A.text(ds, "PatientSpeciesDescription", 64),
        "species_code": A.code_value(ds, "PatientSpeciesCodeSequence")[:64],
        "breed_description": A.text(ds, "PatientBreedDescription", 64),
        "breed_code": A.code_value(ds, "PatientBreedCodeSequence")[:64],
        "sex": A.text(ds, "PatientSex", 16),
        "sex_neutered": A.text(ds, "PatientSexNeutered", 16),
        "birth_date": A.date(ds, "PatientBirthDate"),
        "weight_kg": A.decimal(ds, "PatientWeight"),
        "owner_pseudonym": A.text(ds, "ResponsiblePerson", 32),
    }


def _index(
    *,
    ds: Any,
    metadata: dict[str, Any],
    originals: dict[str, Any],
    owner: Any,
    key: str,
    info: Any,
    organisation_id: int,
    received_sha: str,
    received_size: int,
    actor: str,
    user_id: int | None,
    ip: str | None,
    source: str,
) -> IngestResult:
    ts = str(ds.file_meta.TransferSyntaxUID)
    sop_uid = str(ds.SOPInstanceUID)
    study_uid = str(ds.StudyInstanceUID)
    series_uid = str(ds.SeriesInstanceUID)
    with transaction.atomic():
        patient_id = A.text(ds, "PatientID", 64) or f"NOID-{study_uid[-20:]}"
        pfields = _patient_fields(ds)
        patient, created = Patient.objects.get_or_create(
            organisation_id=organisation_id, patient_id=patient_id, defaults=pfields
        )
        if not created:
            # The newest data wins for the animal's details, except where it is silent.
            changed = {k: v for k, v in pfields.items() if v not in ("", None) and getattr(patient, k) != v}
            if changed:
                Patient.objects.filter(pk=patient.pk).update(**changed)

        study, study_created = Study.objects.select_for_update().get_or_create(
            study_instance_uid=study_uid,
            defaults={
                "organisation_id": organisation_id,
                "patient": patient,
                "study_date": A.date(ds, "StudyDate"),
                "study_time": A.time(ds, "StudyTime"),
                "accession_number": A.text(ds, "AccessionNumber", 64),
                "study_id": A.text(ds, "StudyID", 16),
                "study_description": A.text(ds, "StudyDescription", 200),
                "referring_physician_name": A.text(ds, "ReferringPhysicianName", 200),
                "patient_name": pfields["patient_name"],
                "dicom_patient_id": patient_id,
                "patient_birth_date": pfields["birth_date"],
                "patient_sex": pfields["sex"],
                "species_description": pfields["species_description"],
                "breed_description": pfields["breed_description"],
                "responsible_person": pfields["owner_pseudonym"],
                "dicom_json": A.subset_json(metadata, A.STUDY_KEYWORDS),
            },
        )
        series, series_created = Series.objects.get_or_create(
            series_instance_uid=series_uid,
            defaults={
                "study": study,
                "modality": A.text(ds, "Modality", 16),
                "series_number": A.integer(ds, "SeriesNumber"),
                "series_description": A.text(ds, "SeriesDescription", 200),
                "series_date": A.date(ds, "SeriesDate"),
                "series_time": A.time(ds, "SeriesTime"),
                "body_part_examined": A.text(ds, "BodyPartExamined", 64),
                "performed_procedure_step_start_date": A.date(ds, "PerformedProcedureStepStartDate"),
                "performed_procedure_step_start_time": A.time(ds, "PerformedProcedureStepStartTime"),
                "dicom_json": A.subset_json(metadata, A.SERIES_KEYWORDS),
            },
        )
        blob = Blob.objects.create(
            key=key,
            size=info.size,
            sha256=info.sha256,
            transfer_syntax_uid=ts,
            locations=list(getattr(blobs.store(), "location_names", [blobs.store().name])),
        )
        previous = Instance.objects.select_for_update().filter(sop_instance_uid=sop_uid).first()
        fields = {
            "series": series,
            "study": study,
            "sop_class_uid": str(ds.SOPClassUID),
            "instance_number": A.integer(ds, "InstanceNumber"),
            "rows": A.integer(ds, "Rows"),
            "columns": A.integer(ds, "Columns"),
            "bits_allocated": A.integer(ds, "BitsAllocated"),
            "number_of_frames": A.integer(ds, "NumberOfFrames"),
            "blob": blob,
            "transfer_syntax_uid": ts,
            "original_transfer_syntax_uid": ts,
            "original_sha256": received_sha,
            "original_size": received_size,
            "metadata": metadata,
        }
        if previous is not None:
            # VETPACS_KEEP_VERSIONS: keep the superseded copy, serve the new one.
            InstanceVersion.objects.create(
                instance=previous,
                version=previous.version,
                blob=previous.blob,
                original_sha256=previous.original_sha256,
            )
            for k, v in fields.items():
                setattr(previous, k, v)
            previous.version += 1
            previous.save()
            inst, status = previous, "replaced"
        else:
            inst = Instance.objects.create(sop_instance_uid=sop_uid, **fields)
            status = "stored"
            Series.objects.filter(pk=series.pk).update(number_of_instances=F("number_of_instances") + 1)
            Study.objects.filter(pk=study.pk).update(
                number_of_instances=F("number_of_instances") + 1,
                number_of_series=F("number_of_series") + (1 if series_created else 0),
            )
        if series_created and series.modality:
            modalities = set(filter(None, study.modalities_in_study.split("\\")))
            if series.modality not in modalities:
                modalities.add(series.modality)
                Study.objects.filter(pk=study.pk).update(modalities_in_study="\\".join(sorted(modalities)))
        if originals:
            identity.keep_instance_originals(
                organisation_id=organisation_id,
                study_instance_uid=study_uid,
                sop_instance_uid=sop_uid,
                owner=owner,
                originals=originals,
            )
        PendingBlob.objects.filter(key=key).delete()
        audit.record(
            "instance.stored" if status == "stored" else "instance.replaced",
            organisation_id=organisation_id,
            user_id=user_id,
            actor=actor,
            ip=ip,
            target=f"instance:{sop_uid}",
            detail={"study": study_uid, "source": source, "sha256": received_sha, "size": received_size},
        )
        if settings.VETPACS_COMPRESS_ON_INGEST and codecs.can_compress(ds):
            from vetpacs.apps.archive.tasks import compress_instance

            compress_instance.enqueue(inst.id)
    return IngestResult(status, str(ds.SOPClassUID), sop_uid, study_uid, series_uid, inst.id)


def compress(instance_id: int) -> bool:
    """Re-encode an uncompressed stored instance as JPEG-LS Lossless. Idempotent."""
    inst = Instance.objects.select_related("blob").filter(pk=instance_id).first()
    if inst is None or not codecs.is_uncompressed(inst.transfer_syntax_uid):
        return False
    store = blobs.store()
    old_blob = inst.blob
    with store.open(old_blob.key) as f:
        ds = read_dataset(f, defer=False)
    if not codecs.can_compress(ds):
        return False
    codecs.compress_jpegls(ds)
    key = new_blob_key()
    PendingBlob.objects.create(key=key)
    try:
        info = _put_dataset(store, key, ds)
        with transaction.atomic():
            current = Instance.objects.select_for_update().get(pk=instance_id)
            if current.blob_id != old_blob.id:
                raise RuntimeError("instance changed while compressing")
            blob = Blob.objects.create(
                key=key,
                size=info.size,
                sha256=info.sha256,
                transfer_syntax_uid=str(codecs.STORAGE_SYNTAX),
                locations=old_blob.locations,
            )
            current.blob = blob
            current.transfer_syntax_uid = str(codecs.STORAGE_SYNTAX)
            current.save(update_fields=["blob", "transfer_syntax_uid"])
            old_key = old_blob.key
            old_blob.delete()
            PendingBlob.objects.filter(key=key).delete()
            # The old bytes go only once the new index is committed.
            PendingBlob.objects.create(key=old_key)
            transaction.on_commit(lambda: _delete_blob(old_key))
    except RuntimeError:
        _discard(store, key)
        return False
    except BaseException:
        _discard(store, key)
        raise
    return True


def _delete_blob(key: str) -> None:
    blobs.store().delete(key)
    PendingBlob.objects.filter(key=key).delete()


def sweep_orphans(*, older_than_seconds: int | None = None) -> int:
    """Delete blobs a crash left unindexed. Returns how many were removed."""
    grace = settings.VETPACS_ORPHAN_GRACE_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - dt.timedelta(seconds=grace)
    store = blobs.store()
    removed = 0
    for pending in PendingBlob.objects.filter(created_at__lte=cutoff):
        if not Blob.objects.filter(key=pending.key).exists():
            store.delete(pending.key)
            removed += 1
        pending.delete()
    temporary = getattr(store, "temporary_files", None)
    leftovers = list(temporary()) if temporary else []
    # Request bodies and parts spooled by STOW-RS or uploads that a crash interrupted.
    leftovers += [p for p in Path(settings.VETPACS_INCOMING_DIR).glob("*") if p.is_file()]
    if leftovers:
        for tmp in leftovers:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime <= cutoff.timestamp():
                    tmp.unlink()
                    removed += 1
    return removed


@dataclass(frozen=True)
class VerifyProblem:
    key: str
    problem: str


def verify_blobs() -> tuple[int, list[VerifyProblem]]:
    """Re-hash every indexed blob; report what is missing or does not match its SHA-256."""
    store = blobs.store()
    checked = 0
    problems: list[VerifyProblem] = []
    verify_all = getattr(store, "verify_each", None)
    for blob in Blob.objects.order_by("id").iterator(chunk_size=500):
        checked += 1
        if verify_all is not None:
            bad = [loc for loc, ok in verify_all(blob.key, blob.sha256).items() if not ok]
            problems += [VerifyProblem(blob.key, f"copy on {loc} missing or corrupt") for loc in bad]
            if not bad:
                Blob.objects.filter(pk=blob.pk).update(verified_at=timezone.now())
            continue
        if not store.exists(blob.key):
            problems.append(VerifyProblem(blob.key, "missing"))
        elif not store.verify(blob.key, blob.sha256):
            problems.append(VerifyProblem(blob.key, "SHA-256 mismatch"))
        else:
            Blob.objects.filter(pk=blob.pk).update(verified_at=timezone.now())
    return checked, problems
