"""The event log: ids 1..n without gaps, replay from any id, durable across a reopen."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from musicsep.service.events import EventLog
from musicsep.service.sqlite_store import SqliteStore


def test_ids_have_no_gaps_and_replay_from_any_point(tmp_path):
    log = EventLog(SqliteStore(tmp_path / "db.sqlite3"))
    for n in range(5):
        log.append("job", "progress", {"percent": n})
    log.append("job", "completed", {"stems": {}})
    events = log.read("job")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e.data["event"] == e.type for e in events)
    for after in range(7):
        assert [e.id for e in log.read("job", after)] == list(range(after + 1, 7))


def test_ids_continue_after_the_store_is_reopened(tmp_path):
    path = tmp_path / "db.sqlite3"
    first = SqliteStore(path)
    EventLog(first).append("job", "queued", {"position": 1})
    EventLog(first).append("job", "started", {})
    first.close()
    log = EventLog(SqliteStore(path))
    assert log.append("job", "progress", {"percent": 1.0}).id == 3
    assert [e.type for e in log.read("job")] == ["queued", "started", "progress"]


def test_followers_get_live_events_until_the_terminal_one(tmp_path):
    log = EventLog(SqliteStore(tmp_path / "db.sqlite3"))
    log.append("job", "queued", {"position": 1})

    async def scenario() -> list[list[int]]:
        async def follow() -> list[int]:
            return [event.id async for batch in log.follow("job") for event in batch]

        followers = [asyncio.ensure_future(follow()) for _ in range(3)]
        await asyncio.sleep(0)  # let them reach their wait before the live appends
        for n in range(3):
            log.append("job", "progress", {"percent": n})
            await asyncio.sleep(0)
        log.append("job", "cancelled", {"reason": "test"})
        return await asyncio.wait_for(asyncio.gather(*followers), timeout=10)

    assert asyncio.run(scenario()) == [[1, 2, 3, 4, 5]] * 3


def test_a_log_stored_before_long_strings_were_cut_out_still_replays(tmp_path):
    """Rows written by the previous version: one JSON text each (ASCII-escaped), no parts."""
    path = tmp_path / "db.sqlite3"
    SqliteStore(path).close()
    data = {"event": "completed", "stems": {"vocals": {"data": "QUJD" * 10_000}}, "analysis": {"key": "ré"}}
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events (job_id, id, type, data) VALUES (?,?,?,?)",
            ("job", 1, "completed", json.dumps(data, separators=(",", ":"))),
        )
    (event,) = EventLog(SqliteStore(path)).read("job")
    assert event.data == data
    assert json.loads(b"".join(event.text.chunks())) == data


def test_an_event_and_its_long_strings_are_stored_together_or_not_at_all(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.append_event("job", 1, "queued", b'{"event":"queued"}', [])
    with pytest.raises(sqlite3.IntegrityError):  # the same id again: the row is refused …
        store.append_event("job", 1, "completed", b'{"event":"completed","data":""}', [(29, b"QUJD" * 5000)])
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:  # … and so is its long string
        assert db.execute("SELECT COUNT(*) FROM event_parts").fetchone()[0] == 0
    assert EventLog(store).append("job", "progress", {"percent": 1}).id == 2
