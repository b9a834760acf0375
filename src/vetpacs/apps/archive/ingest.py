"""The ingest service, shared by STOW-RS, `vetpacs import` and gateway uploads (R-6.2.1a, R-7.5a/c).

A batch of files is archived in three steps:
1. each file alone: hash, parse up to Pixel Data, validate, judge repeats, split the owner's identity;
2. each blob written (its key first recorded as pending, then temporary name, fsync, rename), the
   stored file being the received one with only its header changed (dicom.splice); a batch's blobs
   are written side by side in a small thread pool, so their fsyncs overlap;
3. one transaction indexes the whole batch with bulk inserts, clears the pending rows, appends the
   audit events and queues compression.
If that transaction meets a concurrent writer (a unique key taken meanwhile), the batch's blobs go
and every file is retried in a transaction of its own, where a repeat is judged as such.

Crash safety (kill -9 at any point): the index never points at a missing blob; a blob left by a
crash is named by its pending row and swept; repeating the same upload is an idempotent success.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from pydicom import dcmwrite
from pydicom.valuerep import PersonName

from vetpacs.apps.archive import blobs, rowsql
from vetpacs.apps.archive.generation import bump_generation
from vetpacs.apps.archive.models import Blob, Instance, InstanceVersion, Patient, PendingBlob, Series, Study
from vetpacs.apps.archive.search_keys import animal_name_key
from vetpacs.apps.audit import group_commit
from vetpacs.apps.audit import services as audit
from vetpacs.apps.identity import envelope
from vetpacs.apps.identity import services as identity
from vetpacs.apps.identity.models import InstanceIdentity
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.dicom import attributes as A
from vetpacs.dicom import codecs, splice
from vetpacs.dicom.identity import is_veterinary, owner_fields, split_identity
from vetpacs.dicom.parse import read_dataset, validate
from vetpacs.storage.base import CHUNK_SIZE, BlobInfo, new_blob_key


@dataclass(frozen=True)
class IngestResult:
    status: str  # stored | duplicate | replaced
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    instance_id: int


@dataclass
class _Item:
    """One file on its way in."""

    index: int
    path: Path
    sha256: str
    size: int
    ds: Any  # the dataset up to Pixel Data (or whole, when the syntax cannot be spliced)
    header: splice.Header | None
    has_pixel_data: bool
    pixel: splice.PixelElement | None = None
    previous: Instance | None = None
    owner: Any = None
    originals: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    info: BlobInfo | None = None
    dropped: tuple[int, ...] = ()  # top-level tags removed from the stored file besides the owner's
    rows: _Rows | None = None  # index fields, read from the dataset before the transaction

    # Read once: each is looked up many times per batch, and pydicom's attribute access is not cheap.
    @functools.cached_property
    def sop_uid(self) -> str:
        return str(self.ds.SOPInstanceUID)

    @functools.cached_property
    def study_uid(self) -> str:
        return str(self.ds.StudyInstanceUID)

    @functools.cached_property
    def series_uid(self) -> str:
        return str(self.ds.SeriesInstanceUID)


@dataclass(frozen=True)
class _Rows:
    """An item's index fields, read from its dataset (pydicom, pinyin) before the index transaction,
    so the database's write lock is held for the writes only. The patient, study and series fields are
    read for the first item of each study and series in a batch only (None for the others)."""

    instance: dict[str, Any]
    transfer_syntax_uid: str
    patient_id: str = ""
    patient: dict[str, Any] | None = None
    study: dict[str, Any] | None = None
    series: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Caller:
    organisation_id: int
    actor: str
    user_id: int | None
    ip: str | None
    source: str


Outcome = IngestResult | VetpacsError


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
    [outcome] = ingest_batch(
        [path],
        organisation_id=organisation_id,
        actor=actor,
        user_id=user_id,
        ip=ip,
        source=source,
        expected_study_uid=expected_study_uid,
        declared_sha256s=[declared_sha256],
        sha256s=[sha256],
    )
    if isinstance(outcome, VetpacsError):
        raise outcome
    return outcome


def ingest_batch(
    paths: Sequence[str | os.PathLike[str]],
    *,
    organisation_id: int,
    actor: str = "system",
    user_id: int | None = None,
    ip: str | None = None,
    source: str = "import",
    expected_study_uid: str | None = None,
    declared_sha256s: Sequence[str | None] | None = None,
    sha256s: Sequence[str | None] | None = None,
    attempt: int = 0,
) -> list[Outcome]:
    """Archive several files; one outcome per file, in order: its result or the error refusing it.

    `attempt` counts the tries of a file that lost a race with a concurrent writer (CONCURRENT_RETRIES)."""
    caller = _Caller(organisation_id, actor, user_id, ip, source)
    outcomes: list[Outcome | None] = [None] * len(paths)
    items: list[_Item] = []
    for i, raw in enumerate(paths):
        try:
            items.append(
                _read(
                    i,
                    Path(raw),
                    (sha256s or [None] * len(paths))[i],
                    (declared_sha256s or [None] * len(paths))[i],
                    expected_study_uid,
                )
            )
        except VetpacsError as exc:
            outcomes[i] = exc
    items = _judge_repeats(items, outcomes, organisation_id)
    store = blobs.store()
    if items:
        PendingBlob.objects.bulk_create([PendingBlob(key=_new_key(item)) for item in items])
    owners: dict[tuple[Any, ...], Any] = {}
    protected: list[_Item] = []
    for item in items:
        try:
            _protect_identity(item, organisation_id, owners)
            protected.append(item)
        except VetpacsError as exc:
            discard(store, [item.key])
            outcomes[item.index] = exc
        except BaseException:
            discard(store, [i.key for i in items])
            raise
    written: list[_Item] = []
    failure: BaseException | None = None
    for item, error in zip(protected, _write_blobs(store, protected), strict=True):
        if error is None:
            written.append(item)
        elif isinstance(error, VetpacsError):
            discard(store, [item.key])
            outcomes[item.index] = error
        else:
            failure = failure or error
    if failure is not None:
        discard(store, [i.key for i in items])
        raise failure
    if written:
        try:
            for item, result in zip(written, _index(written, caller), strict=True):
                outcomes[item.index] = result
        except (IntegrityError, _Conflict):
            # A concurrent writer took a key, or the batch holds the same instance twice: one by one.
            discard(store, [i.key for i in written])
            for item in written:
                outcomes[item.index] = (
                    _retry_alone(item, caller, expected_study_uid, attempt=attempt)
                    if len(written) > 1 or attempt < CONCURRENT_RETRIES
                    else _sole(item, caller)
                )
        except BaseException:
            discard(store, [i.key for i in written])
            raise
    return [o if o is not None else VetpacsError(Errors.STORAGE_FAILED, "not processed") for o in outcomes]


class _Conflict(Exception):
    """The batch cannot be indexed in one go (a repeat inside it)."""


# A single file whose transaction lost a race (PostgreSQL: another upload of the same study created its
# patient, study or series first) is tried again: the rows it needs now exist, so the next try succeeds.
CONCURRENT_RETRIES = 3


def _retry_alone(item: _Item, caller: _Caller, expected_study_uid: str | None, *, attempt: int) -> Outcome:
    [outcome] = ingest_batch(
        [item.path],
        organisation_id=caller.organisation_id,
        actor=caller.actor,
        user_id=caller.user_id,
        ip=caller.ip,
        source=caller.source,
        expected_study_uid=expected_study_uid,
        sha256s=[item.sha256],
        attempt=attempt + 1,
    )
    return outcome


def _sole(item: _Item, caller: _Caller) -> Outcome:
    """A single file whose own transaction met a concurrent writer: judge it as a repeat."""
    try:
        existing = _existing_outcome(item, caller.organisation_id)
    except VetpacsError as exc:
        return exc
    if existing is not None:
        return existing
    return VetpacsError(
        Errors.STORAGE_FAILED, f"instance {item.sop_uid} met a concurrent change; send it again"
    )


def _read(index: int, path: Path, sha: str | None, declared: str | None, expected_study: str | None) -> _Item:
    received = sha or file_sha256(path)
    if declared and declared.lower() != received:
        raise VetpacsError(
            Errors.CHECKSUM_MISMATCH,
            f"declared SHA-256 {declared} but the received bytes hash to {received}",
        )
    size = path.stat().st_size
    with path.open("rb") as f:
        header = splice.read_header(f)
        if splice.can_splice(header.ds):
            pixel = splice.pixel_element(f, header)
            ds = header.ds
            item = _Item(index, path, received, size, ds, header, pixel is not None, pixel)
            validate(ds, has_pixel_data=pixel is not None, pixel_length=pixel.length if pixel else None)
        else:
            # Deflated or big endian: the header cannot be cut from the rest; read the whole file.
            ds = read_dataset(path)
            item = _Item(index, path, received, size, ds, None, "PixelData" in ds)
            validate(ds)
    if expected_study and item.study_uid != expected_study:
        raise VetpacsError(
            Errors.STUDY_UID_MISMATCH,
            f"instance {item.sop_uid} belongs to study {item.study_uid}, not {expected_study}",
        )
    return item


def _judge_repeats(items: list[_Item], outcomes: list[Outcome | None], organisation_id: int) -> list[_Item]:
    """Repeats of stored instances answer now; what is left goes on to be stored."""
    stored = {
        inst.sop_instance_uid: inst
        for inst in Instance.objects.filter(sop_instance_uid__in=[i.sop_uid for i in items]).select_related(
            "study", "series", "blob"
        )
    }
    rest = []
    for item in items:
        inst = stored.get(item.sop_uid)
        if inst is None:
            rest.append(item)
            continue
        try:
            outcome = _judge(item, inst, organisation_id)
        except VetpacsError as exc:
            outcomes[item.index] = exc
            continue
        if outcome is None:
            item.previous = inst
            rest.append(item)
        else:
            outcomes[item.index] = outcome
    return rest


def _judge(item: _Item, inst: Instance, organisation_id: int) -> IngestResult | None:
    if inst.study.organisation_id != organisation_id:
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"SOP Instance UID {item.sop_uid} is already used by another organisation's data",
        )
    if inst.original_sha256 == item.sha256:
        return _result("duplicate", inst)
    if settings.VETPACS_KEEP_VERSIONS:
        return None
    raise VetpacsError(
        Errors.DUPLICATE_INSTANCE,
        f"SOP Instance UID {item.sop_uid} is already stored with different content "
        f"(stored SHA-256 {inst.original_sha256}, received {item.sha256})",
    )


def _existing_outcome(item: _Item, organisation_id: int) -> IngestResult | None:
    inst = Instance.objects.filter(sop_instance_uid=item.sop_uid).select_related("study", "series").first()
    return None if inst is None else _judge(item, inst, organisation_id)


def _new_key(item: _Item) -> str:
    item.key = new_blob_key()
    return item.key


def _protect_identity(item: _Item, organisation_id: int, owners: dict[tuple[Any, ...], Any]) -> None:
    """Owner identifiers go to the identity store; the stored file carries a pseudonym."""
    # R-6.1.3c: a gateway sends the owner encrypted to the platform's key; restore it, then split.
    if envelope.restore_encrypted_attributes(item.ds):
        item.dropped = (envelope.ENCRYPTED_ATTRIBUTES,)
    fields = owner_fields(item.ds)
    patient_id = _patient_id(item.ds)
    seen = (patient_id, *sorted(fields.items()))
    if seen not in owners:  # a batch is mostly one animal's study: look its owner up once
        current = (
            Patient.objects.filter(organisation_id=organisation_id, patient_id=patient_id)
            .values_list("owner_pseudonym", flat=True)
            .first()
            if any(fields.values())
            else None
        )
        owners[seen] = identity.find_or_create_owner(
            organisation_id=organisation_id, fields=fields, current=current or ""
        )
    item.owner = owners[seen]
    pseudonym = item.owner.pseudonym if item.owner else identity.new_pseudonym()
    item.originals = split_identity(item.ds, pseudonym)
    item.metadata = A.metadata_json(item.ds)
    if item.pixel is not None:
        # Read up to Pixel Data only: the placeholder stands for the element left on disk.
        tag = f"{item.pixel.tag:08X}"
        item.metadata[tag] = {"vr": item.pixel.vr, "BulkDataURI": f"{A.BULK_PREFIX}{tag}"}
        item.metadata = dict(sorted(item.metadata.items()))


# Blobs of one batch are written side by side: each waits on its own fsync (the GIL is released there),
# and the file system commits concurrent fsyncs together instead of one after another.
WRITE_THREADS = 8
_writers: tuple[int, ThreadPoolExecutor] | None = None
_writers_lock = threading.Lock()


def _write_pool() -> ThreadPoolExecutor:
    """One pool per process (the platform's workers are forked: a pool does not survive a fork)."""
    global _writers  # noqa: PLW0603 - one pool per process, made after the fork
    with _writers_lock:
        if _writers is None or _writers[0] != os.getpid():
            _writers = (os.getpid(), ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="blob-write"))
        return _writers[1]


def _write_blobs(store: Any, items: list[_Item]) -> list[BaseException | None]:
    """Write every item's blob (item.info set on success); one error or None per item, in order.

    Returns only once every write has ended, so a caller that discards blobs after a failure
    never races a write still in flight."""

    def write(item: _Item) -> BaseException | None:
        try:
            item.info = _write_blob(store, item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
            return exc
        return None

    if len(items) <= 1:
        return [write(item) for item in items]
    return list(_write_pool().map(write, items))


def _write_blob(store: Any, item: _Item) -> BlobInfo:
    if not item.originals and not item.dropped:
        # Nothing to change: keep the received bytes exactly (lossy originals stay as they came).
        with item.path.open("rb") as f:
            return store.put(item.key, f)
    if item.header is not None:
        # Only the owner's elements change: patch them, copy every other byte as received.
        changes = {int(t, 16): item.ds.get(int(t, 16)) for t in item.originals}
        changes.update(dict.fromkeys(item.dropped))
        with item.path.open("rb") as src:
            return store.put(item.key, splice.changed_stream(item.header, changes, src))
    return put_dataset(store, item.key, item.ds)


def _put_via_temporary(store: Any, key: str, write: Any) -> BlobInfo:
    incoming = Path(settings.VETPACS_INCOMING_DIR)
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=incoming) as tmp:
        write(tmp)
        tmp.seek(0)
        return store.put(key, tmp)


def put_dataset(store: Any, key: str, ds: Any) -> BlobInfo:
    return _put_via_temporary(store, key, lambda tmp: dcmwrite(tmp, ds, enforce_file_format=True))


def discard(store: Any, keys: list[str]) -> None:
    """Remove blobs that will not be indexed, and their pending rows."""
    for key in keys:
        with contextlib.suppress(Exception):
            store.delete(key)
    with contextlib.suppress(Exception):
        PendingBlob.objects.filter(key__in=keys).delete()


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
        "animal_name_key": animal_name_key(str(animal)[:200]),
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


def _patient_id(ds: Any) -> str:
    return A.text(ds, "PatientID", 64) or f"NOID-{str(ds.StudyInstanceUID)[-20:]}"


def _index(items: list[_Item], caller: _Caller) -> list[IngestResult]:
    """Index the whole batch in one transaction; raises _Conflict or IntegrityError to go one by one.

    Everything that needs no write (the index fields, the sealed originals, each row's values adapted
    for the database, the audit events) is made before the transaction, which then runs statements only:
    on SQLite the one write lock is held for as short a time as the batch allows."""
    if len({i.sop_uid for i in items}) != len(items):
        raise _Conflict
    org_id = caller.organisation_id
    _read_rows(items)
    sealed = identity.seal_originals(
        organisation_id=org_id,
        entries=[(i.study_uid, i.sop_uid, i.owner, i.originals) for i in items if i.originals],
    )
    sql = _statements()
    blob_rows = [sql.blob.prepare(_blob(item)) for item in items]
    instance_rows = [
        sql.instance.prepare(Instance(sop_instance_uid=i.sop_uid, **_instance(i))) for i in items
    ]
    identity_rows = [sql.identity.prepare(row) for row in sealed]
    events = [_stored_event(item, caller) for item in items]
    replaced = [i.sop_uid for i in items if i.previous is not None]
    compressible = [
        i
        for i in items
        if settings.VETPACS_COMPRESS_ON_INGEST and codecs.can_compress(i.ds, has_pixel_data=i.has_pixel_data)
    ]
    with transaction.atomic():
        studies = {
            s.study_instance_uid: s
            for s in Study.objects.select_for_update().filter(
                study_instance_uid__in={i.study_uid for i in items}
            )
        }
        series = {
            s.series_instance_uid: s
            for s in Series.objects.filter(
                series_instance_uid__in={i.series_uid for i in items}
            ).select_related("study")
        }
        for item in items:
            _check_ownership(item, org_id, studies.get(item.study_uid), series.get(item.series_uid))
        new_series_per_study: dict[str, int] = {}
        patients: dict[str, Patient] = {}
        for item in items:
            if item.study_uid not in studies:
                rows = _whole(item)
                pid = rows.patient_id
                if pid not in patients:
                    patients[pid] = _patient(org_id, pid, rows.patient or {})
                studies[item.study_uid] = _new_study(org_id, patients[pid], item)
            if item.series_uid not in series:
                series[item.series_uid] = _new_series(studies[item.study_uid], item)
                new_series_per_study[item.study_uid] = new_series_per_study.get(item.study_uid, 0) + 1
        blob_ids = sql.blob.insert(blob_rows)
        results: dict[str, IngestResult] = {}
        fresh: list[tuple[_Item, list[Any]]] = []
        for item, blob_id, row in zip(items, blob_ids, instance_rows, strict=True):
            study, serie = studies[item.study_uid], series[item.series_uid]
            if item.previous is not None:
                fields = {"series": serie, "study": study, "blob_id": blob_id, **_instance(item)}
                inst = _replace(item.previous, fields)
                results[item.sop_uid] = _outcome("replaced", item, inst.id)
            else:
                sql.instance.set(row, "series_id", serie.pk)
                sql.instance.set(row, "study_id", study.pk)
                sql.instance.set(row, "blob_id", blob_id)
                fresh.append((item, row))
        for (item, _row), pk in zip(fresh, sql.instance.insert([row for _i, row in fresh]), strict=True):
            results[item.sop_uid] = _outcome("stored", item, pk)
        _count(items, {i.sop_uid for i, _row in fresh}, studies, series, new_series_per_study)
        rowsql.delete_where_in(InstanceIdentity, "sop_instance_uid", replaced)
        if identity_rows:
            sql.identity.insert(identity_rows)
        rowsql.delete_where_in(PendingBlob, "key", [i.key for i in items])
        bump_generation()
        group_commit.append_rows(events)
        to_compress = [results[i.sop_uid].instance_id for i in compressible]
        if to_compress:
            from vetpacs.apps.archive.tasks import compress_instances

            compress_instances.enqueue(to_compress)
    return [results[i.sop_uid] for i in items]


@dataclass(frozen=True)
class _Statements:
    blob: rowsql.PreparedInsert
    instance: rowsql.PreparedInsert
    identity: rowsql.PreparedInsert


@functools.cache
def _statements() -> _Statements:
    return _Statements(
        rowsql.PreparedInsert(Blob), rowsql.PreparedInsert(Instance), rowsql.PreparedInsert(InstanceIdentity)
    )


def _blob(item: _Item) -> Blob:
    assert item.info is not None and item.rows is not None  # noqa: S101 - written and read before indexing
    return Blob(
        key=item.key,
        size=item.info.size,
        sha256=item.info.sha256,
        transfer_syntax_uid=item.rows.transfer_syntax_uid,
        locations=_locations(),
    )


def _instance(item: _Item) -> dict[str, Any]:
    assert item.rows is not None  # noqa: S101 - read before indexing
    return item.rows.instance


def _outcome(status: str, item: _Item, instance_id: int) -> IngestResult:
    return IngestResult(
        status, _instance(item)["sop_class_uid"], item.sop_uid, item.study_uid, item.series_uid, instance_id
    )


def _stored_event(item: _Item, caller: _Caller) -> dict[str, Any]:
    return audit.event_fields(
        "instance.replaced" if item.previous is not None else "instance.stored",
        organisation_id=caller.organisation_id,
        user_id=caller.user_id,
        actor=caller.actor,
        ip=caller.ip,
        target=f"instance:{item.sop_uid}",
        detail={"study": item.study_uid, "source": caller.source, "sha256": item.sha256, "size": item.size},
    )


def _locations() -> list[str]:
    store = blobs.store()
    return list(getattr(store, "location_names", [store.name]))


def _check_ownership(item: _Item, org_id: int, study: Study | None, series: Series | None) -> None:
    if study is not None and study.organisation_id != org_id:
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"Study Instance UID {item.study_uid} is already used by another organisation's data",
        )
    if series is not None and series.study.study_instance_uid != item.study_uid:
        raise VetpacsError(
            Errors.UID_IN_OTHER_ORGANISATION,
            f"Series Instance UID {item.series_uid} already belongs to a different study",
        )


def _read_rows(items: list[_Item]) -> None:
    """Each item's instance fields; the patient, study and series fields only for the first item of
    each study and series in the batch, the one whose rows a new study or series is made from."""
    studies: set[str] = set()
    series: set[str] = set()
    for item in items:
        first = item.study_uid not in studies or item.series_uid not in series
        studies.add(item.study_uid)
        series.add(item.series_uid)
        item.rows = _rows(item, whole=first)


def _whole(item: _Item) -> _Rows:
    """The rows of the first item of a study or series, which _read_rows read with the patient, study
    and series fields: a new study or series is made from that item's rows."""
    assert item.rows is not None and item.rows.study is not None  # noqa: S101 - _read_rows read them
    return item.rows


def _rows(item: _Item, *, whole: bool) -> _Rows:
    ds = item.ds
    ts = str(ds.file_meta.TransferSyntaxUID)
    instance = {
        "sop_class_uid": str(ds.SOPClassUID),
        "instance_number": A.integer(ds, "InstanceNumber"),
        "rows": A.integer(ds, "Rows"),
        "columns": A.integer(ds, "Columns"),
        "bits_allocated": A.integer(ds, "BitsAllocated"),
        "number_of_frames": A.integer(ds, "NumberOfFrames"),
        "transfer_syntax_uid": ts,
        "original_transfer_syntax_uid": ts,
        "original_sha256": item.sha256,
        "original_size": item.size,
        "metadata": item.metadata,
    }
    if not whole:
        return _Rows(instance=instance, transfer_syntax_uid=ts)
    pfields = _patient_fields(ds)
    return _Rows(
        instance=instance,
        transfer_syntax_uid=ts,
        patient_id=_patient_id(ds),
        patient=pfields,
        study={
            "study_instance_uid": item.study_uid,
            "study_date": A.date(ds, "StudyDate"),
            "study_time": A.time(ds, "StudyTime"),
            "accession_number": A.text(ds, "AccessionNumber", 64),
            "study_id": A.text(ds, "StudyID", 16),
            "study_description": A.text(ds, "StudyDescription", 200),
            "referring_physician_name": A.text(ds, "ReferringPhysicianName", 200),
            "patient_name": pfields["patient_name"],
            "patient_birth_date": pfields["birth_date"],
            "patient_sex": pfields["sex"],
            "species_description": pfields["species_description"],
            "breed_description": pfields["breed_description"],
            "responsible_person": pfields["owner_pseudonym"],
            "dicom_json": A.subset_json(item.metadata, A.STUDY_KEYWORDS),
        },
        series={
            "series_instance_uid": item.series_uid,
            "modality": A.text(ds, "Modality", 16),
            "series_number": A.integer(ds, "SeriesNumber"),
            "series_description": A.text(ds, "SeriesDescription", 200),
            "series_date": A.date(ds, "SeriesDate"),
            "series_time": A.time(ds, "SeriesTime"),
            "body_part_examined": A.text(ds, "BodyPartExamined", 64),
            "performed_procedure_step_start_date": A.date(ds, "PerformedProcedureStepStartDate"),
            "performed_procedure_step_start_time": A.time(ds, "PerformedProcedureStepStartTime"),
            "dicom_json": A.subset_json(item.metadata, A.SERIES_KEYWORDS),
        },
    )


def _patient(org_id: int, patient_id: str, pfields: dict[str, Any]) -> Patient:
    patient, created = Patient.objects.get_or_create(
        organisation_id=org_id, patient_id=patient_id, defaults=pfields
    )
    if not created:
        # The newest data wins for the animal's details, except where it is silent.
        changed = {k: v for k, v in pfields.items() if v not in ("", None) and getattr(patient, k) != v}
        if changed:
            Patient.objects.filter(pk=patient.pk).update(**changed)
    return patient


def _new_study(org_id: int, patient: Patient, item: _Item) -> Study:
    return Study.objects.create(
        organisation_id=org_id,
        patient=patient,
        dicom_patient_id=patient.patient_id,
        **(_whole(item).study or {}),
    )


def _new_series(study: Study, item: _Item) -> Series:
    return Series.objects.create(study=study, **(_whole(item).series or {}))


def _replace(previous: Instance, fields: dict[str, Any]) -> Instance:
    """VETPACS_KEEP_VERSIONS: keep the superseded copy, serve the new one."""
    previous = Instance.objects.select_for_update().get(pk=previous.pk)
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
    return previous


def _count(
    items: list[_Item],
    created: set[str],
    studies: dict[str, Study],
    series: dict[str, Series],
    new_series_per_study: dict[str, int],
) -> None:
    per_series: dict[str, int] = {}
    per_study: dict[str, int] = {}
    for item in items:
        if item.sop_uid in created:
            per_series[item.series_uid] = per_series.get(item.series_uid, 0) + 1
            per_study[item.study_uid] = per_study.get(item.study_uid, 0) + 1
    counters = _counters()
    with connection.cursor() as cursor:
        if per_series:
            cursor.executemany(counters.series, [[n, series[uid].pk] for uid, n in per_series.items()])
        rows = []
        for uid in set(per_study) | set(new_series_per_study):
            study = studies[uid]
            modalities = set(filter(None, study.modalities_in_study.split("\\")))
            modalities |= {series[i.series_uid].modality for i in items if i.study_uid == uid} - {""}
            rows.append(
                [
                    per_study.get(uid, 0),
                    new_series_per_study.get(uid, 0),
                    "\\".join(sorted(modalities)),
                    study.pk,
                ]
            )
        if rows:
            cursor.executemany(counters.study, rows)


@dataclass(frozen=True)
class _CounterStatements:
    series: str
    study: str


@functools.cache
def _counters() -> _CounterStatements:
    """The study and series counters' UPDATEs (what _count did with F() expressions, without the ORM)."""
    q = connection.ops.quote_name
    instances, series_count = q("number_of_instances"), q("number_of_series")
    return _CounterStatements(
        series=f"UPDATE {q(Series._meta.db_table)} SET {instances} = {instances} + %s "  # noqa: S608
        f"WHERE {q('id')} = %s",
        study=f"UPDATE {q(Study._meta.db_table)} SET {instances} = {instances} + %s, "  # noqa: S608
        f"{series_count} = {series_count} + %s, {q('modalities_in_study')} = %s WHERE {q('id')} = %s",
    )
