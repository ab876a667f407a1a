"""SQLite persistence for jobs and their event logs (the embedded column of DESIGN §7).

One file under the data dir, WAL journal with synchronous=FULL: a row committed before a
`kill -9` or a power loss is there after the restart, which is what lets queued jobs run again
and event ids continue without gaps. The stdlib driver is enough: every statement is a small
indexed write or read, so it runs inline on the event loop thread (about 0.2 ms with the fsync of
synchronous=FULL on this project's disks) instead of paying a thread hop per event.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from musicsep.service.database_check import check_database_file, not_a_database
from musicsep.service.jobs import Job, JobSpec, JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    filename TEXT,
    idempotency_key TEXT UNIQUE,
    result TEXT,
    error TEXT,
    title TEXT,
    model_used TEXT,
    fallback_reason TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_parts (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS event_parts_event ON event_parts (job_id, event_id);
"""

_JOB_COLUMNS = (
    "id, status, spec, seq, priority, created_at, started_at, finished_at, expires_at, attempts, "
    "request_id, filename, result, error, title, model_used, fallback_reason"
)
#: Columns added since the first release, with their types: a database written by an earlier
#: release gets them (empty) when it is opened.
_ADDED_COLUMNS = {"title": "TEXT", "model_used": "TEXT", "fallback_reason": "TEXT"}
#: What a job's run changes (the UPDATE of update_job and update_if); the title is not among
#: them, so that a worker's copy of the job never undoes a rename made while it ran.
_MUTABLE = (
    "status=?, started_at=?, finished_at=?, expires_at=?, attempts=?, result=?, error=?, model_used=?, "
    "fallback_reason=?"
)


class StoredEvent(NamedTuple):
    """An event row as stored (service/event_text.py): its skeleton text and its parts as
    (offset in the skeleton, size, key for `read_part`)."""

    id: int
    type: str
    skeleton: bytes
    parts: tuple[tuple[int, int, int], ...]


def read_part_by_substr(db: sqlite3.Connection, key: int, start: int, size: int) -> bytes:
    """`size` bytes of an event part from `start`, for Python 3.10's sqlite3, which lacks
    `Connection.blobopen`: SQLite's substr counts bytes on a BLOB (1-based), but loads the whole
    value to cut it, so a replay there reads each part once per chunk."""
    row = db.execute("SELECT substr(data, ?, ?) FROM event_parts WHERE id=?", (start + 1, size, key)).fetchone()
    if row is None:  # as blobopen answers a part deleted with its job
        raise sqlite3.OperationalError(f"no such rowid: {key}")
    return bytes(row[0])


class DuplicateIdempotencyKey(Exception):
    """A job with this idempotency key exists already; `job_id` names it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class SqliteStore:
    """Jobs and events in one SQLite file; safe to call from the loop and from worker threads."""

    def __init__(self, path: Path, *, job_folders: Path | None = None) -> None:
        """Open (or create) the database at `path`; DatabaseRefused when it is empty, not SQLite,
        or missing while `job_folders` (the data dir's `jobs`) holds jobs (database_check.py).

        WAL with `synchronous=FULL`: a job the API answered 202 for, and every event a watcher
        was sent, must survive a power loss or an OS crash, not only a `kill -9`. NORMAL (the
        usual WAL pairing) skips the fsync at each commit, so an OS crash can take the last
        commits with it: accepted jobs that vanish, event ids reused after the restart. FULL
        fsyncs the WAL at every commit: bench/sqlite_durability.py measured a job create at 0.21 ms
        instead of 0.03 ms and an event append at 0.20 ms instead of 0.02 ms (7-9x, ~0.18 ms more;
        ext4 on a virtio disk). A disk with a slow fsync pays its fsync time per event, on the loop.
        """
        check_database_file(path, job_folders)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except sqlite3.DatabaseError:
            self._db.close()
            raise not_a_database(path) from None

    def _add_columns(self) -> None:
        present = {str(row[1]) for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def durability(self) -> tuple[str, str]:
        """(journal mode, synchronous level) of this connection, as SQLite reports them."""
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            level = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), {0: "off", 1: "normal", 2: "full", 3: "extra"}[int(level)]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- jobs -----------------------------------------------------------------------------
    def next_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        return int(row[0]) + 1

    def insert_job(self, job: Job) -> None:
        try:
            with self._lock:
                self._db.execute(
                    f"INSERT INTO jobs ({_JOB_COLUMNS}, idempotency_key) VALUES ({','.join('?' * 18)})",
                    (*self._row(job), job.spec.idempotency_key),
                )
        except sqlite3.IntegrityError:
            existing = self.find_by_idempotency_key(job.spec.idempotency_key or "")
            if existing is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None

    def update_job(self, job: Job) -> None:
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {_MUTABLE} WHERE id=?", self._changes(job))

    @staticmethod
    def _changes(job: Job) -> tuple[Any, ...]:
        """The mutable columns of `job`, then its id: the parameters of the UPDATE."""
        return (
            job.status.value,
            job.started_at,
            job.finished_at,
            job.expires_at,
            job.attempts,
            _dump(job.result),
            _dump(job.error),
            job.model_used,
            job.fallback_reason,
            job.id,
        )

    def update_if(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Read, change and write one job under the store's lock, or leave it alone: `change`
        mutates the job and returns True to write it. Returns the written job, or None when the
        job is missing or `change` declined (the same contract as the Redis store's WATCH/MULTI)."""
        with self._lock:
            # BEGIN IMMEDIATE takes the database's write lock before the read: another connection
            # to the same file (another process on the data dir) cannot change the row in between.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
                job = None if row is None else self._job(row)
                if job is None or not change(job):
                    self._db.execute("ROLLBACK")
                    return None
                self._db.execute(f"UPDATE jobs SET {_MUTABLE} WHERE id=?", self._changes(job))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return job

    def rename_job(self, job_id: str, title: str | None) -> bool:
        """Set the job's title (its other columns untouched); False when there is no such job."""
        with self._lock:
            return self._db.execute("UPDATE jobs SET title=? WHERE id=?", (title, job_id)).rowcount > 0

    def delete_job(self, job_id: str) -> None:
        """Remove the job's row, its idempotency key with it (its events: `delete_events`)."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def unbind_idempotency_key(self, job_id: str) -> None:
        """Free the job's idempotency key, so that a repeat of its request creates a new job
        (the job itself stays, failed: it could not be queued)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET idempotency_key=NULL WHERE id=?", (job_id,))

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def find_by_idempotency_key(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE idempotency_key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def list_jobs(self, statuses: Iterable[JobStatus] | None = None, limit: int = 100) -> list[Job]:
        query = f"SELECT {_JOB_COLUMNS} FROM jobs"
        params: list[Any] = []
        wanted = list(statuses or [])
        if wanted:
            query += f" WHERE status IN ({','.join('?' * len(wanted))})"
            params.extend(s.value for s in wanted)
        query += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [self._job(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def expired_before(self, now: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ? AND status != ?",
                (now, JobStatus.EXPIRED.value),
            ).fetchall()
        return [str(row[0]) for row in rows]

    # --- events ---------------------------------------------------------------------------
    # An event is its wire text with long strings cut out (the row) and those strings (parts, one
    # row each in event_parts), written in one transaction. Parts are BLOBs read with SQLite's
    # incremental blob I/O, so a replay reads a chunk without loading the rest of the value
    # (Python 3.11+; on 3.10, which has no blobopen, SQLite's substr reads the chunk instead).
    def append_event(
        self, job_id: str, event_id: int, type_: str, skeleton: bytes, parts: list[tuple[int, bytes]]
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO events (job_id, id, type, data) VALUES (?,?,?,?)",
                    (job_id, event_id, type_, skeleton.decode()),
                )
                self._db.executemany(
                    "INSERT INTO event_parts (job_id, event_id, at, size, data) VALUES (?,?,?,?,?)",
                    [(job_id, event_id, at, len(text), text) for at, text in parts],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def events(self, job_id: str, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Rows with id > `after` in order, at most `limit` of them (all without)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, data FROM events WHERE job_id=? AND id>? ORDER BY id LIMIT ?",
                (job_id, after, -1 if limit is None else limit),
            ).fetchall()
            return self._with_parts(job_id, rows)

    def last_event(self, job_id: str) -> StoredEvent | None:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, data FROM events WHERE job_id=? ORDER BY id DESC LIMIT 1", (job_id,)
            ).fetchall()
            found = self._with_parts(job_id, rows)
        return found[0] if found else None

    def read_part(self, key: int, start: int, size: int) -> bytes:
        with self._lock:
            if sys.version_info >= (3, 11):
                with self._db.blobopen("event_parts", "data", key, readonly=True) as blob:
                    blob.seek(start)
                    return blob.read(size)
            return read_part_by_substr(self._db, key, start, size)

    def _with_parts(self, job_id: str, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
        """Rows (ordered by id) as StoredEvents with their parts' places; the lock is held."""
        if not rows:
            return []
        ids = [int(row[0]) for row in rows]
        parts: dict[int, list[tuple[int, int, int]]] = {}
        for event_id, at, size, key in self._db.execute(
            "SELECT event_id, at, size, id FROM event_parts WHERE job_id=? AND event_id BETWEEN ? AND ? "
            "ORDER BY event_id, at",
            (job_id, min(ids), max(ids)),
        ):
            parts.setdefault(int(event_id), []).append((int(at), int(size), int(key)))
        return [StoredEvent(int(i), str(t), str(d).encode(), tuple(parts.get(int(i), ()))) for i, t, d in rows]

    def last_event_id(self, job_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE job_id=?", (job_id,)).fetchone()
        return int(row[0])

    def delete_events(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE job_id=?", (job_id,))
            self._db.execute("DELETE FROM event_parts WHERE job_id=?", (job_id,))

    # --- rows <-> records -----------------------------------------------------------------
    @staticmethod
    def _row(job: Job) -> tuple[Any, ...]:
        return (
            job.id,
            job.status.value,
            job.spec.model_dump_json(),
            job.seq,
            job.spec.priority,
            job.created_at,
            job.started_at,
            job.finished_at,
            job.expires_at,
            job.attempts,
            job.request_id,
            job.filename,
            _dump(job.result),
            _dump(job.error),
            job.title,
            job.model_used,
            job.fallback_reason,
        )

    @staticmethod
    def _job(row: tuple[Any, ...]) -> Job:
        (id_, status, spec, seq, _prio, created, started, finished, expires, attempts, rid, fname, result, error) = row[
            :14
        ]
        title, model_used, fallback_reason = row[14:]
        return Job(
            id=id_,
            spec=JobSpec.model_validate_json(spec),
            status=JobStatus(status),
            seq=seq,
            created_at=created,
            started_at=started,
            finished_at=finished,
            expires_at=expires,
            attempts=attempts,
            request_id=rid,
            filename=fname,
            result=None if result is None else json.loads(result),
            error=None if error is None else json.loads(error),
            title=title,
            model_used=model_used,
            fallback_reason=fallback_reason,
        )


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
