"""The embedded job database is refused at startup when it cannot be what
this server left, instead of starting empty and orphaning every job folder.

Refused (never rebuilt, see service/database_check.py): a zero-length file, a file that is not an
SQLite database, and a missing database while job folders exist. A fresh data dir still starts.
Also here: the connection's durability settings (WAL, synchronous=FULL).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from musicsep.service.database_check import DatabaseRefused
from musicsep.service.jobs import Job, JobSpec
from musicsep.service.sqlite_store import SqliteStore
from server_harness import free_port, stop_process

JOB_ID = "0123456789abcdef0123456789abcdef"
#: `musicsep serve` must refuse within this (imports included); a server that starts instead fails.
REFUSAL_TIMEOUT_S = 60


def _data_dir(tmp_path: Path, *, database: bytes | None, job_folder: bool) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    if database is not None:
        (data / "musicsep.sqlite3").write_bytes(database)
    if job_folder:
        (data / "jobs" / JOB_ID / "stems").mkdir(parents=True)
        (data / "jobs" / JOB_ID / "stems" / "vocals.wav").write_bytes(b"RIFF")
    return data


def _open(data: Path) -> SqliteStore:
    return SqliteStore(data / "musicsep.sqlite3", job_folders=data / "jobs")


@pytest.mark.parametrize(
    ("database", "job_folder", "words"),
    [
        (b"", True, "is empty (0 bytes)"),
        (b"", False, "is empty (0 bytes)"),
        (None, True, "is missing, but 1 job folder"),
        (b"these bytes are not an SQLite database" * 50, False, "is not an SQLite database"),
    ],
)
def test_an_unusable_database_is_refused_saying_what_to_do(tmp_path, database, job_folder, words):
    data = _data_dir(tmp_path, database=database, job_folder=job_folder)
    before = sorted(path.relative_to(data) for path in data.rglob("*"))
    with pytest.raises(DatabaseRefused) as refused:
        _open(data)
    message = str(refused.value)
    assert words in message and str(data / "musicsep.sqlite3") in message
    assert "backup" in message
    assert sorted(path.relative_to(data) for path in data.rglob("*")) == before  # nothing touched


def test_a_fresh_data_dir_and_a_written_database_open(tmp_path):
    data = _data_dir(tmp_path, database=None, job_folder=False)
    store = _open(data)
    store.insert_job(Job(id=JOB_ID, spec=JobSpec(model="tiny_htdemucs"), seq=1))
    store.close()
    (data / "jobs" / JOB_ID).mkdir(parents=True)
    assert _open(data).get_job(JOB_ID) is not None


def test_the_job_database_is_wal_with_synchronous_full(tmp_path):
    """FULL: an accepted job survives a power loss, not only a process kill (see store.py)."""
    store = _open(_data_dir(tmp_path, database=None, job_folder=False))
    assert store.durability() == ("wal", "full")
    with sqlite3.connect(tmp_path / "data" / "musicsep.sqlite3") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file


@pytest.mark.parametrize(("database", "job_folder"), [(b"", True), (None, True)])
def test_musicsep_serve_exits_2_in_words_instead_of_starting_empty(tmp_path, database, job_folder):
    """Today's server started on such a data dir and answered /health with an empty job list."""
    data = _data_dir(tmp_path, database=database, job_folder=job_folder)
    env = {
        **os.environ,
        "MUSICSEP_DATA_DIR": str(data),
        "MUSICSEP_PORT": str(free_port()),
        "MUSICSEP_HOST": "127.0.0.1",
        "MUSICSEP_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "musicsep.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=REFUSAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process(process)
        pytest.fail("musicsep serve started on a data dir whose job database is gone")
    assert process.returncode == 2, err
    assert "musicsep serve: the job database" in err and "backup" in err
    assert "Traceback" not in err


def test_a_database_of_an_earlier_release_opens_with_its_jobs_untitled(tmp_path):
    """The jobs table as releases before job titles wrote it: its jobs read back, and can be renamed."""
    path = tmp_path / "old.sqlite3"
    spec = JobSpec(model="tiny_htdemucs").model_dump_json()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, spec TEXT NOT NULL, seq INTEGER NOT NULL, "
            "priority INTEGER NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, expires_at REAL, "
            "attempts INTEGER NOT NULL DEFAULT 0, request_id TEXT, filename TEXT, idempotency_key TEXT UNIQUE, "
            "result TEXT, error TEXT)"
        )
        db.execute(
            "INSERT INTO jobs (id, status, spec, seq, priority, created_at, filename) VALUES (?,?,?,?,?,?,?)",
            (JOB_ID, "completed", spec, 1, 3, 1.0, "old song.wav"),
        )
    store = SqliteStore(path)
    try:
        job = store.get_job(JOB_ID)
        assert job is not None
        assert (job.filename, job.title, job.model_used, job.fallback_reason) == ("old song.wav", None, None, None)
        assert store.rename_job(JOB_ID, "Old Song")
        assert store.get_job(JOB_ID).title == "Old Song"
    finally:
        store.close()
