"""The startup check of the embedded job database: refuse one that cannot be what this server left.

A zero-length `musicsep.sqlite3` (a failed copy or restore, a full disk, a truncation) or a
missing one beside existing job folders used to start an empty server: every job folder became
an orphan, links and ids answered 404, and the next writes made the loss permanent. This server
never leaves the file empty (its first statement writes the header) and never deletes it, so
either state means the database was lost, and the server refuses to start, touching nothing.

Refuse rather than rebuild: a job folder holds the input and the stems, but what a job *is*
lives only in the database (its options and idempotency key, webhook, result and analysis, event
log, expiry). A rebuild would invent jobs it cannot describe, and re-run queued ones with
guessed options. The operator can restore the file from a backup, or choose to start empty by
moving the job folders aside; the message says both.
"""

from __future__ import annotations

import re
from pathlib import Path

_JOB_FOLDER = re.compile(r"[0-9a-f]{32}")


class DatabaseRefused(Exception):
    """The job database is not one this server can start on; the message says what to do."""


def check_database_file(path: Path, job_folders: Path | None) -> None:
    """Raise DatabaseRefused for a zero-length `path`, or a missing one while `job_folders`
    holds job folders. (A file that is not SQLite at all is found when it is opened.)"""
    if path.exists() and path.stat().st_size == 0:
        raise DatabaseRefused(
            f"the job database {path} is empty (0 bytes), which this server never leaves: it was "
            f"truncated (a failed copy or restore, a full disk). {_WHAT_TO_DO.format(jobs=job_folders or 'jobs')}"
        )
    if not path.exists() and job_folders is not None and (count := _count_job_folders(job_folders)):
        raise DatabaseRefused(
            f"the job database {path} is missing, but {count} job folder(s) exist under {job_folders}: "
            f"starting would orphan them. {_WHAT_TO_DO.format(jobs=job_folders)}"
        )


def not_a_database(path: Path) -> DatabaseRefused:
    return DatabaseRefused(
        f"the job database {path} is not an SQLite database (damaged, or another file in its place); "
        "restore it from a backup, or move it aside to start with no jobs. Nothing was changed."
    )


_WHAT_TO_DO = (
    "Nothing was changed. Restore musicsep.sqlite3 (with its -wal file) from a backup; or, "
    "to start with no jobs, move {jobs} and the database file aside."
)


def _count_job_folders(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for entry in folder.iterdir() if entry.is_dir() and _JOB_FOLDER.fullmatch(entry.name))
