"""One contract for every event log: the embedded SQLite one and Redis Streams behave alike."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from musicsep.service.events import PAGE_EVENTS, EventLog
from musicsep.service.interfaces import JobEventLog
from musicsep.service.sqlite_store import SqliteStore

OpenLog = Callable[[], Any]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_log(request, tmp_path) -> OpenLog:
    """Opens a log over the same backing data each time it is called (another process, a restart)."""
    closers: list[Any] = []

    def open_() -> Any:
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "db.sqlite3")
            closers.append(store)
            return EventLog(store)
        from musicsep.scaleout.redis_events import RedisEventLog

        log = RedisEventLog(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
        closers.append(log)
        return log

    def stored() -> int:
        """How many rows / keys hold events and their parts, wherever the backend keeps them."""
        if request.param == "sqlite":
            with sqlite3.connect(tmp_path / "db.sqlite3") as db:
                return sum(
                    db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("events", "event_parts")
                )
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        count = sum(1 for _ in client.scan_iter(match=f"{request.getfixturevalue('redis_prefix')}*"))
        client.close()
        return count

    open_.stored = stored  # type: ignore[attr-defined]
    yield open_
    for closer in closers:
        closer.close()


def test_every_log_implements_the_interface(open_log):
    assert isinstance(open_log(), JobEventLog)


def test_ids_have_no_gaps_and_replay_from_any_point(open_log):
    log = open_log()
    for n in range(5):
        assert log.append("job", "progress", {"percent": n}).id == n + 1
    log.append("job", "completed", {"stems": {}})
    events = log.read("job")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.data for e in events][:2] == [{"event": "progress", "percent": 0}, {"event": "progress", "percent": 1}]
    for after in range(8):
        assert [e.id for e in log.read("job", after)] == list(range(after + 1, 7))
    assert log.last("job").type == "completed"
    assert log.last("other") is None
    assert log.read("other") == []


def test_ids_continue_in_another_instance(open_log):
    open_log().append("job", "queued", {"position": 1})
    open_log().append("job", "started", {})
    assert open_log().append("job", "progress", {"percent": 1.0}).id == 3
    assert [e.type for e in open_log().read("job")] == ["queued", "started", "progress"]


def test_jobs_have_separate_logs(open_log):
    log = open_log()
    log.append("a", "queued", {"position": 1})
    log.append("b", "queued", {"position": 2})
    log.append("a", "started", {})
    assert [e.id for e in log.read("a")] == [1, 2]
    assert [(e.id, e.data["position"]) for e in log.read("b")] == [(1, 2)]


def test_forgotten_logs_are_empty(open_log):
    log = open_log()
    log.append("job", "queued", {"position": 1})
    log.append("job", "cancelled", {"reason": "test"})
    log.forget("job")
    assert log.read("job") == []
    assert log.last("job") is None


async def follow_while_appending(log: Any, afters: tuple[int, ...]) -> list[list[tuple[int, str]]]:
    """Followers of "job" at the cursors `afters` start, then three `progress` and a `cancelled`
    are appended (each append after the followers had their turn): the (id, type) each got."""

    async def follow(after: int) -> list[tuple[int, str]]:
        return [(e.id, e.type) async for batch in log.follow("job", after) for e in batch]

    followers = [asyncio.ensure_future(follow(after)) for after in afters]
    await asyncio.sleep(0)
    for n in range(3):
        log.append("job", "progress", {"percent": n})
        await asyncio.sleep(0)
    log.append("job", "cancelled", {"reason": "test"})
    return await asyncio.wait_for(asyncio.gather(*followers), timeout=10)


def test_followers_get_replay_and_live_events_until_the_terminal_one(open_log):
    log = open_log()
    log.append("job", "queued", {"position": 1})
    got = asyncio.run(follow_while_appending(log, (0, 0, 1)))
    assert [[event_id for event_id, _ in events] for events in got] == [[1, 2, 3, 4, 5]] * 2 + [[2, 3, 4, 5]]


def test_a_follower_stops_at_the_terminal_event_even_when_more_was_appended(open_log):
    log = open_log()
    log.append("job", "queued", {"position": 0})
    log.append("job", "failed", {"code": "x", "message": "y"})
    log.append("job", "progress", {"percent": 1})

    async def scenario() -> list[list[str]]:
        return [[e.type for e in batch] async for batch in log.follow("job")]

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == [["queued", "failed"]]


def test_a_follower_beyond_the_log_gets_the_terminal_event_instead_of_waiting_forever(open_log):
    """A cursor past the log (Last-Event-ID from another log, or made up)
    waited for ids that never come. It now gets what lies past it, and the terminal event."""
    log = open_log()
    log.append("job", "queued", {"position": 1})
    got = asyncio.run(follow_while_appending(log, (100, 3)))
    assert got == [[(5, "cancelled")], [(4, "progress"), (5, "cancelled")]]


def test_a_follower_at_the_terminal_event_gets_nothing_and_one_beyond_it_gets_it(open_log):
    log = open_log()
    log.append("job", "queued", {"position": 0})
    log.append("job", "failed", {"code": "x", "message": "y"})

    async def scenario(after: int) -> list[list[tuple[int, str]]]:
        return [[(e.id, e.type) for e in batch] async for batch in log.follow("job", after)]

    assert asyncio.run(asyncio.wait_for(scenario(2), timeout=10)) == []
    assert asyncio.run(asyncio.wait_for(scenario(50), timeout=10)) == [[(2, "failed")]]
    assert asyncio.run(asyncio.wait_for(scenario(1), timeout=10)) == [[(2, "failed")]]


def _base64_result(stems: int, stem_bytes: int) -> dict[str, Any]:
    """A `payload=base64` job's `completed` payload: each stem's bytes as base64 (long strings),
    beside short values that must keep their JSON escaping (quotes, backslashes, non-ASCII)."""
    return {
        "stems": {
            f"stem{i}": {
                "data": base64.b64encode(bytes([i]) * stem_bytes).decode(),
                "format": "wav16",
                "bytes": stem_bytes,
            }
            for i in range(stems)
        },
        "analysis": {"key": "fa dièse", "note": 'a "quoted" \\ path\n', "beats": [0.5, 1.0]},
        "timings": {"total_s": 1.25},
        "lyrics": 'long "text" é\\ ' * 2000,  # a long string that needs escaping
    }


def _wire_json(type_: str, payload: dict[str, Any]) -> bytes:
    """The `data:` of an event as the SSE encoder has always sent it."""
    return json.dumps({"event": type_, **payload}, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_page_holds_at_most_limit_events(open_log):
    log = open_log()
    for n in range(10):
        log.append("job", "progress", {"percent": n})
    assert [e.id for e in log.read("job", 0, limit=4)] == [1, 2, 3, 4]
    assert [e.id for e in log.read("job", 4, limit=4)] == [5, 6, 7, 8]
    assert [e.id for e in log.read("job", 8, limit=4)] == [9, 10]
    assert [e.id for e in log.read("job", 0)] == list(range(1, 11))


def test_long_strings_come_back_byte_for_byte_and_are_decoded_only_when_asked(open_log):
    payload = _base64_result(stems=3, stem_bytes=200_000)
    log = open_log()
    log.append("job", "started", {"model": "tiny"})
    log.append("job", "completed", payload)
    replayed = open_log().read("job")[-1]
    for size in (1000, 65536):
        chunks = list(replayed.text.chunks(size))
        assert b"".join(chunks) == _wire_json("completed", payload)
        assert max(len(chunk) for chunk in chunks) <= size
    assert len(replayed.text.skeleton) < 2000  # the base64 is not in the row
    assert replayed.data == {"event": "completed", **payload}
    assert open_log().last("job").data == {"event": "completed", **payload}


def test_a_replay_reads_a_base64_result_in_chunks_never_whole(open_log):
    """Readers page the log: no reader loads and decodes the whole log (here 16 MB), as they once did."""
    log = open_log()
    log.append("job", "completed", _base64_result(stems=4, stem_bytes=3_000_000))
    reader = open_log()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sizes = [len(chunk) for event in reader.read("job", 0, limit=PAGE_EVENTS) for chunk in event.text.chunks()]
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert sum(sizes) > 16_000_000
    assert peak < 1_000_000, f"a replay held {peak / 1e6:.1f} MB"


def test_followers_get_a_long_log_in_pages(open_log):
    log = open_log()
    total = 2 * PAGE_EVENTS + 10
    for n in range(total - 1):
        log.append("job", "progress", {"percent": n})
    log.append("job", "completed", {"stems": {}})

    async def scenario() -> list[list[int]]:
        return [[e.id for e in batch] async for batch in open_log().follow("job")]

    batches = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert [i for batch in batches for i in batch] == list(range(1, total + 1))
    assert max(len(batch) for batch in batches) <= PAGE_EVENTS


def test_forgotten_logs_leave_no_long_strings_behind(open_log):
    log = open_log()
    log.append("job", "queued", {"position": 0})
    log.append("job", "completed", _base64_result(stems=2, stem_bytes=50_000))
    assert open_log.stored() > 0
    log.forget("job")
    assert open_log.stored() == 0
    assert log.read("job") == []
