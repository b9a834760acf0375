"""The durable upload queue: one SQLite row per received instance, surviving kill -9 and power loss.

R-6.1.4: an upload that fails is retried with capped exponential back-off until it succeeds; the
user can stop an entry, a study or everything and resume later. SQLite in WAL mode with
synchronous=FULL: a committed transition is on disk before the call returns. Each transition is one
transaction, so a crash leaves every row in a state it had; `recover()` at start-up puts entries
that were being uploaded back to pending (their tus URL kept, so the upload resumes where the
platform's confirmed offset is).

States (docs/gateway.md explains them to users):
  pending    待上传   waiting for an upload slot
  uploading  上传中   bytes are being sent
  verifying  校验中   the last chunk is sent; waiting for the platform's SHA-256 confirmation
  done       已完成   the platform confirmed it stored the file with our SHA-256; spool files removed
  failed     上传失败 retrying at next_attempt_at; without next_attempt_at it waits for `retry`
  stopped    已停止   a user stopped it; `resume` puts it back to pending
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PENDING, UPLOADING, VERIFYING, DONE, FAILED, STOPPED = (
    "pending",
    "uploading",
    "verifying",
    "done",
    "failed",
    "stopped",
)
STATES = (PENDING, UPLOADING, VERIFYING, DONE, FAILED, STOPPED)
STATE_LABELS = {
    PENDING: "待上传 / pending",
    UPLOADING: "上传中 / uploading",
    VERIFYING: "校验中 / verifying",
    DONE: "已完成 / done",
    FAILED: "上传失败 / upload failed",
    STOPPED: "已停止 / stopped",
}
ACTIVE = (PENDING, UPLOADING, VERIFYING, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    sop_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL DEFAULT '',
    sop_class_uid TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_description TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    received_path TEXT NOT NULL,
    received_sha256 TEXT NOT NULL,
    received_size INTEGER NOT NULL,
    upload_path TEXT,
    upload_sha256 TEXT,
    upload_size INTEGER,
    state TEXT NOT NULL,
    steps TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    upload_url TEXT,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    done_at REAL,
    upload_parts TEXT
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, next_attempt_at, id);
CREATE INDEX IF NOT EXISTS entries_study ON entries (study_instance_uid);
CREATE INDEX IF NOT EXISTS entries_sop ON entries (sop_instance_uid);
"""
# Columns the schema gained later, with their declarations (a queue file made before has not got them).
_ADDED_COLUMNS = {"upload_parts": "TEXT"}


@dataclass(frozen=True)
class Entry:
    id: int
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    patient_id: str
    study_date: str
    study_description: str
    modality: str
    source: str
    received_path: str
    received_sha256: str
    received_size: int
    upload_path: str | None
    upload_sha256: str | None
    upload_size: int | None
    state: str
    steps: str
    reason: str
    attempts: int
    next_attempt_at: float | None
    upload_url: str | None
    bytes_sent: int
    created_at: float
    updated_at: float
    done_at: float | None
    upload_parts: str | None = None  # a large file's parallel parts (gateway/parallel_upload.py)

    @property
    def step_names(self) -> list[str]:
        return [s["step"] for s in json.loads(self.steps)]


@dataclass(frozen=True)
class StudySummary:
    study_instance_uid: str
    patient_id: str
    study_date: str
    study_description: str
    modalities: str
    total: int
    counts: dict[str, int]
    bytes_total: int
    bytes_sent: int
    reason: str

    @property
    def progress(self) -> float:
        return self.counts.get(DONE, 0) / self.total if self.total else 1.0


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Capped exponential back-off with +-10 % jitter, so many gateways do not retry in step."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return float(delay * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security


class Queue:
    """The queue file; safe to use from several threads and from several processes (CLI and `run`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        """Columns added after a queue file was first made: a clinic's existing file gets them at start."""
        db = self._conn()
        have = {row["name"] for row in db.execute("PRAGMA table_info(entries)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name in have:
                continue
            try:
                db.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process added it just now
                    raise

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit; a committed transition survives power loss.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. durable=False: a change that recover() or a resend makes good if
        a power cut loses it (a claim, progress, a resume URL) is committed without its own fsync;
        the next durable commit syncs it with everything before it."""
        db = self._conn()
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")

    # -- adding ---------------------------------------------------------------------------------

    def add(
        self,
        *,
        sop_instance_uid: str,
        study_instance_uid: str,
        received_path: Path,
        received_sha256: str,
        received_size: int,
        source: str,
        **attrs: str,
    ) -> int:
        row: dict[str, Any] = {
            **attrs,
            "sop_instance_uid": sop_instance_uid,
            "study_instance_uid": study_instance_uid,
            "received_path": received_path,
            "received_sha256": received_sha256,
            "received_size": received_size,
            "source": source,
        }
        return self.add_many([row])[0]

    def add_many(self, rows: list[dict[str, Any]]) -> list[int]:
        """Received instances (keyword arguments of `add` each), in one transaction: one fsync for all."""
        now = time.time()
        ids: list[int] = []
        with self._tx() as db:
            for r in rows:
                step = json.dumps([{"step": "received", "at": now, "detail": r["source"]}])
                cur = db.execute(
                    "INSERT INTO entries (sop_instance_uid, study_instance_uid, series_instance_uid,"
                    " sop_class_uid, patient_id, study_date, study_description, modality, source,"
                    " received_path, received_sha256, received_size, state, steps, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        r["sop_instance_uid"],
                        r["study_instance_uid"],
                        r.get("series_instance_uid", ""),
                        r.get("sop_class_uid", ""),
                        r.get("patient_id", ""),
                        r.get("study_date", ""),
                        r.get("study_description", ""),
                        r.get("modality", ""),
                        r["source"],
                        str(r["received_path"]),
                        r["received_sha256"],
                        r["received_size"],
                        PENDING,
                        step,
                        now,
                        now,
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def find_same(self, sop_instance_uid: str, received_sha256: str) -> Entry | None:
        """An entry already holding these very bytes that is not stopped for good (a modality's resend)."""
        row = (
            self._conn()
            .execute(
                "SELECT * FROM entries WHERE sop_instance_uid=? AND received_sha256=?"
                " ORDER BY id DESC LIMIT 1",
                (sop_instance_uid, received_sha256),
            )
            .fetchone()
        )
        return _entry(row)

    # -- the uploader's transitions ----------------------------------------------------------------

    def claim(self, now: float | None = None) -> Entry | None:
        """Take the oldest entry due for upload and mark it uploading (atomically across workers)."""
        now = time.time() if now is None else now
        due = (
            "SELECT id FROM entries WHERE state=? OR (state=? AND next_attempt_at IS NOT NULL"
            " AND next_attempt_at<=?) ORDER BY (state=?) DESC, id LIMIT 1"
        )
        # An idle worker looks without taking the write lock, so polling never delays the SCP's writes.
        if self._conn().execute(due, (PENDING, FAILED, now, PENDING)).fetchone() is None:
            return None
        with self._tx(durable=False) as db:  # lost in a power cut: recover() makes it pending again
            row = db.execute(due, (PENDING, FAILED, now, PENDING)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE entries SET state=?, attempts=attempts+1, updated_at=? WHERE id=?",
                (UPLOADING, now, row["id"]),
            )
            return _entry(db.execute("SELECT * FROM entries WHERE id=?", (row["id"],)).fetchone())

    def record_step(
        self, entry_id: int, step: str, detail: str = "", *, durable: bool = True, **fields: Any
    ) -> None:
        """Append a pipeline/upload step to the entry's history, with any column changes."""
        with self._tx(durable=durable) as db:
            row = db.execute("SELECT steps FROM entries WHERE id=?", (entry_id,)).fetchone()
            if row is None:
                return
            steps = json.loads(row["steps"])
            steps.append({"step": step, "at": time.time(), "detail": detail})
            fields["steps"] = json.dumps(steps, ensure_ascii=False)
            self._update(db, entry_id, fields)

    def record_steps(self, entry_id: int, new_steps: list[dict[str, Any]], **fields: Any) -> None:
        """Several steps at once (the pipeline's), in one transaction with the columns they set."""
        with self._tx() as db:
            row = db.execute("SELECT steps FROM entries WHERE id=?", (entry_id,)).fetchone()
            if row is None:
                return
            fields["steps"] = json.dumps(json.loads(row["steps"]) + new_steps, ensure_ascii=False)
            self._update(db, entry_id, fields)

    def update(self, entry_id: int, *, durable: bool = True, **fields: Any) -> None:
        with self._tx(durable=durable) as db:
            self._update(db, entry_id, fields)

    def set_state_if(
        self,
        entry_id: int,
        expected: tuple[str, ...],
        state: str,
        *,
        step: tuple[str, str] | None = None,
        **fields: Any,
    ) -> bool:
        """Move to state only from one of the expected states (a stop in between wins).

        `step` (name, detail) is appended to the history in the same transaction: one fsync, not two.
        """
        with self._tx() as db:
            row = db.execute("SELECT state, steps FROM entries WHERE id=?", (entry_id,)).fetchone()
            if row is None or row["state"] not in expected:
                return False
            if step is not None:
                steps = json.loads(row["steps"])
                steps.append({"step": step[0], "at": time.time(), "detail": step[1]})
                fields["steps"] = json.dumps(steps, ensure_ascii=False)
            self._update(db, entry_id, {**fields, "state": state})
            return True

    @staticmethod
    def _update(db: sqlite3.Connection, entry_id: int, fields: dict[str, Any]) -> None:
        fields = {**fields, "updated_at": time.time()}
        cols = ", ".join(f"{k}=?" for k in fields)
        db.execute(f"UPDATE entries SET {cols} WHERE id=?", (*fields.values(), entry_id))  # noqa: S608

    def fail(self, entry_id: int, reason: str, *, retry_in: float | None) -> bool:
        """Upload failed: retry after retry_in seconds, or (None) wait for a user's retry."""
        nxt = None if retry_in is None else time.time() + retry_in
        return self.set_state_if(
            entry_id, (UPLOADING, VERIFYING, PENDING), FAILED, reason=reason, next_attempt_at=nxt
        )

    def recover(self) -> int:
        """At start-up: entries a dead process was uploading go back to pending (their URL kept)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE entries SET state=?, updated_at=? WHERE state IN (?, ?)",
                (PENDING, time.time(), UPLOADING, VERIFYING),
            )
            return cur.rowcount

    # -- what a user does (R-6.1.4) --------------------------------------------------------------

    def _where(self, entry_id: int | None, study: str | None) -> tuple[str, tuple[Any, ...]]:
        if entry_id is not None:
            return "id=?", (entry_id,)
        if study is not None:
            return "study_instance_uid=?", (study,)
        return "1=1", ()

    def stop(self, *, entry_id: int | None = None, study: str | None = None) -> int:
        """停止上传: an entry, a study, or (neither given) everything not yet done."""
        where, args = self._where(entry_id, study)
        with self._tx() as db:
            return db.execute(
                f"UPDATE entries SET state=?, updated_at=? WHERE {where} AND state IN (?,?,?,?)",  # noqa: S608
                (STOPPED, time.time(), *args, *ACTIVE),
            ).rowcount

    def resume(self, *, entry_id: int | None = None, study: str | None = None) -> int:
        where, args = self._where(entry_id, study)
        with self._tx() as db:
            return db.execute(
                f"UPDATE entries SET state=?, reason='', next_attempt_at=NULL, updated_at=?"  # noqa: S608
                f" WHERE {where} AND state=?",
                (PENDING, time.time(), *args, STOPPED),
            ).rowcount

    def retry(self, *, entry_id: int | None = None, study: str | None = None) -> int:
        """Failed entries (waiting or retrying) are due now; attempts start again."""
        where, args = self._where(entry_id, study)
        with self._tx() as db:
            return db.execute(
                f"UPDATE entries SET state=?, next_attempt_at=NULL, attempts=0, updated_at=?"  # noqa: S608
                f" WHERE {where} AND state=?",
                (PENDING, time.time(), *args, FAILED),
            ).rowcount

    # -- reading -------------------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry | None:
        return _entry(self._conn().execute("SELECT * FROM entries WHERE id=?", (entry_id,)).fetchone())

    def state_of(self, entry_id: int) -> str | None:
        row = self._conn().execute("SELECT state FROM entries WHERE id=?", (entry_id,)).fetchone()
        return None if row is None else str(row["state"])

    def entries(
        self, *, study: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[Entry]:
        sql, args = "SELECT * FROM entries WHERE 1=1", []
        if study is not None:
            sql += " AND study_instance_uid=?"
            args.append(study)
        if state is not None:
            sql += " AND state=?"
            args.append(state)
        sql += " ORDER BY id LIMIT ?"
        rows = self._conn().execute(sql, (*args, limit)).fetchall()
        return [e for e in map(_entry, rows) if e is not None]

    def count_study(self, study_instance_uid: str) -> int:
        """Instances of a study the gateway holds or uploaded (a pull skips a study it already has)."""
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(DISTINCT sop_instance_uid) FROM entries WHERE study_instance_uid=?",
                (study_instance_uid,),
            )
            .fetchone()
        )
        return int(row[0])

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, COUNT(*) AS n FROM entries GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({r["state"]: r["n"] for r in rows})
        return out

    def depth(self) -> int:
        """Entries not yet confirmed by the platform (what the heartbeat reports)."""
        row = self._conn().execute("SELECT COUNT(*) FROM entries WHERE state != ?", (DONE,)).fetchone()
        return int(row[0])

    def studies(self, limit: int = 200) -> list[StudySummary]:
        rows = (
            self._conn()
            .execute(
                "SELECT study_instance_uid, MAX(patient_id) AS patient_id, MAX(study_date) AS study_date,"
                " MAX(study_description) AS study_description,"
                " GROUP_CONCAT(DISTINCT modality) AS modalities, COUNT(*) AS total,"
                " SUM(COALESCE(upload_size, received_size)) AS bytes_total,"
                " SUM(CASE WHEN state=? THEN COALESCE(upload_size, received_size) ELSE bytes_sent END)"
                " AS bytes_sent, MAX(id) AS last_id,"
                " MAX(CASE WHEN state=? THEN reason ELSE '' END) AS reason"
                " FROM entries GROUP BY study_instance_uid ORDER BY last_id DESC LIMIT ?",
                (DONE, FAILED, limit),
            )
            .fetchall()
        )
        per_state = self._conn().execute(
            "SELECT study_instance_uid, state, COUNT(*) AS n FROM entries GROUP BY study_instance_uid, state"
        )
        counts: dict[str, dict[str, int]] = {}
        for r in per_state:
            counts.setdefault(r["study_instance_uid"], {})[r["state"]] = r["n"]
        return [
            StudySummary(
                study_instance_uid=r["study_instance_uid"],
                patient_id=r["patient_id"] or "",
                study_date=r["study_date"] or "",
                study_description=r["study_description"] or "",
                modalities=(r["modalities"] or "").replace(",", "\\"),
                total=r["total"],
                counts=counts.get(r["study_instance_uid"], {}),
                bytes_total=r["bytes_total"] or 0,
                bytes_sent=r["bytes_sent"] or 0,
                reason=r["reason"] or "",
            )
            for r in rows
        ]

    def throughput(self, window_s: float = 60.0, now: float | None = None) -> tuple[float, float]:
        """(instances per second, bytes per second) confirmed over the last window."""
        now = time.time() if now is None else now
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(upload_size), 0) FROM entries WHERE state=? AND done_at>=?",
                (DONE, now - window_s),
            )
            .fetchone()
        )
        return row[0] / window_s, row[1] / window_s

    def last_failure(self) -> str:
        row = (
            self._conn()
            .execute("SELECT reason FROM entries WHERE state=? ORDER BY updated_at DESC LIMIT 1", (FAILED,))
            .fetchone()
        )
        return "" if row is None else str(row[0])


def _entry(row: sqlite3.Row | None) -> Entry | None:
    return None if row is None else Entry(**dict(row))
