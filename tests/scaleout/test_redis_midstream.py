"""Fault injection: Redis killed while event streams are open (scale-out).

Every open stream ends at once, cleanly, with an in-band notice: `retry:` and the SSE comment
`: error events_unavailable: …` (a comment: no client takes it for a log event or a terminal
`failed`). While Redis is down a reconnect answers 503 with Retry-After; the clients keep trying
(musicsep.clients waits the Retry-After) and, when Redis is back, resume with Last-Event-ID and
get the rest of the log (the worker, started after the outage, runs the job): nothing lost,
nothing twice. The test runs its own `redis-server`, never the machine's shared one.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest

from musicsep.clients.aio import AsyncClient
from server_harness import ResumingWatcher, stream_events

from .scaleout import ScaleOut, cluster_env
from .test_celery_e2e import submit
from .test_redis_outage import private_redis  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SCENARIO_S = 180.0


def test_redis_killed_mid_stream_ends_streams_in_band_and_clients_resume_when_it_is_back(
    tmp_path,
    tiny_model_repo,
    private_redis,
    make_clip,  # noqa: F811
):
    env = cluster_env(tmp_path / "data", tiny_model_repo, f"redis://127.0.0.1:{private_redis.port}/0", "musicsep:")
    env["MUSICSEP_SSE_RETRY_MS"] = "200"
    (tmp_path / "logs").mkdir()
    cluster = ScaleOut(env, tmp_path / "logs")
    try:
        api = cluster.api()
        # No worker yet: the job stays queued (its log: `queued`) while Redis goes away.
        job_id = submit(api, make_clip(seconds=2.0), analyze="false")
        url = f"{api}/api/v1/jobs/{job_id}/events"
        watchers = [ResumingWatcher(url) for _ in range(4)]
        typed: list = []

        async def with_the_client() -> None:
            async with AsyncClient(api, max_reconnects=200) as client:
                async for event in client.events(job_id):
                    typed.append((event.id, event.type))

        async def scenario() -> None:
            deadline = time.monotonic() + SCENARIO_S
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=60)) as session:
                follows = [asyncio.ensure_future(w.follow(session, deadline)) for w in watchers]
                client = asyncio.ensure_future(with_the_client())
                await asyncio.wait_for(asyncio.gather(*(w.live.wait() for w in watchers)), 60)
                await asyncio.to_thread(private_redis.stop)
                # Every open stream ends by itself, with the notice, well before the XREAD block.
                started = time.monotonic()
                while not all(w.endings for w in watchers):
                    assert time.monotonic() - started < 15, [w.endings for w in watchers]
                    await asyncio.sleep(0.05)
                assert all(w.refusals == [] or set(w.refusals) == {503} for w in watchers)
                reply = await asyncio.to_thread(httpx.get, url, headers={"Last-Event-ID": "1"}, timeout=30)
                assert reply.status_code == 503 and reply.headers["Retry-After"].isdigit()
                await asyncio.to_thread(private_redis.start)
                await asyncio.to_thread(cluster.worker, "w1")
                await asyncio.wait_for(asyncio.gather(*follows, client), max(1.0, deadline - time.monotonic()))

        asyncio.run(scenario())
        status, full = stream_events(url)
        log = [(event_id, kind) for event_id, kind, _ in full]
        assert status == 200 and log[-1][1] == "completed"
        assert typed == log
        for watcher in watchers:
            # The API process stayed up all through: every reconnect reached it.
            assert watcher.events == log and watcher.unreachable == 0
            first_end = watcher.endings[0]
            assert ": error events_unavailable: the event log cannot be reached" in first_end
            assert "retry: 200" in first_end
            assert "event: failed" not in first_end
    finally:
        cluster.stop()
