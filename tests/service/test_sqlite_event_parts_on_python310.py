"""Python 3.10 (the oldest the project supports) has no `sqlite3.Connection.blobopen`: the SQLite
store reads an event's long strings there with SQLite's substr, which must give the same bytes as
the blob reads 3.11+ use. mypy with python_version 3.10 found the missing method."""

from __future__ import annotations

import sqlite3

import pytest

from musicsep.service.sqlite_store import SqliteStore, read_part_by_substr


def test_event_parts_read_by_substr_equal_the_blob_reads(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite3")
    text = bytes(range(256)) * 40 + b"tail"
    store.append_event("job", 1, "completed", b'{"stems": ""}', [(11, text)])
    (event,) = store.events("job")
    ((_, size, key),) = event.parts
    assert size == len(text)
    for start, length in [(0, size), (0, 1), (255, 300), (size - 4, 4), (size - 4, 100), (size, 10)]:
        assert read_part_by_substr(store._db, key, start, length) == text[start : start + length]
        assert store.read_part(key, start, length) == text[start : start + length]
    store.close()


def test_a_part_deleted_with_its_job_is_an_error_in_both_reads(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        read_part_by_substr(store._db, 7, 0, 10)
    with pytest.raises(sqlite3.OperationalError):
        store.read_part(7, 0, 10)
    store.close()
