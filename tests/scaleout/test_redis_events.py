"""What only the Redis event log promises: several processes append to and follow one log."""

from __future__ import annotations

import asyncio
import threading

import pytest

from musicsep.scaleout.redis_events import RedisEventLog

pytestmark = pytest.mark.redis


def test_concurrent_appenders_get_ids_without_gaps_or_repeats(redis_url, redis_prefix):
    logs = [RedisEventLog(redis_url, redis_prefix) for _ in range(4)]
    ids: list[int] = []
    lock = threading.Lock()

    def append_many(log: RedisEventLog) -> None:
        for n in range(50):
            event = log.append("job", "progress", {"percent": n})
            with lock:
                ids.append(event.id)

    threads = [threading.Thread(target=append_many, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(ids) == list(range(1, 201))
    assert [e.id for e in logs[0].read("job")] == list(range(1, 201))
    for log in logs:
        log.close()


def test_a_follower_on_one_node_sees_what_another_node_appends(redis_url, redis_prefix):
    """Two API nodes: a browser reconnecting to the other one with Last-Event-ID loses nothing."""
    worker, node_a, node_b = (RedisEventLog(redis_url, redis_prefix) for _ in range(3))
    for n in range(3):
        worker.append("job", "progress", {"percent": n})

    async def scenario() -> tuple[list[int], list[int]]:
        seen_on_a: list[int] = []
        async for batch in node_a.follow("job"):
            seen_on_a += [e.id for e in batch]
            break  # the connection to node A drops after its first batch
        follower_b = asyncio.ensure_future(_ids(node_b.follow("job", after=seen_on_a[-1])))
        await asyncio.sleep(0)
        worker.append("job", "progress", {"percent": 3})
        worker.append("job", "completed", {"stems": {}})
        return seen_on_a, await asyncio.wait_for(follower_b, timeout=10)

    seen_on_a, seen_on_b = asyncio.run(scenario())
    assert seen_on_a + seen_on_b == [1, 2, 3, 4, 5]
    for log in (worker, node_a, node_b):
        log.close()


async def _ids(batches) -> list[int]:
    return [event.id async for batch in batches for event in batch]


def test_streams_are_capped(redis_url, redis_prefix):
    log = RedisEventLog(redis_url, redis_prefix, cap=100)
    for n in range(1000):
        log.append("job", "progress", {"percent": n})
    kept = log.read("job")
    assert len(kept) < 1000
    assert kept[-1].id == 1000
    assert [e.id for e in kept] == list(range(kept[0].id, 1001))
    log.close()


def test_a_follower_silent_for_longer_than_the_clients_read_timeout_keeps_following(redis_url, redis_prefix):
    """Regression: redis-py's asyncio client times a read out after 5 s, as long as one XREAD
    BLOCK, so a job that said nothing for 5 s (queued behind others, loading a model) ended its
    watchers' streams with an error instead of their next event."""
    log = RedisEventLog(redis_url, redis_prefix)
    log.append("job", "queued", {"position": 3})

    async def scenario() -> list[str]:
        async def later() -> None:
            await asyncio.sleep(6.5)  # the silence itself is what is tested, not a synchronisation
            log.append("job", "completed", {"stems": {}})

        writer = asyncio.ensure_future(later())
        seen = [event.type async for batch in log.follow("job") for event in batch]
        await writer
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == ["queued", "completed"]
    log.close()
