"""SIGTERM with 10 open streams. The process exits within uvicorn's
graceful timeout (uvicorn_config.json) + 1 s, every stream is closed cleanly with `retry:`, and
every client resumes with Last-Event-ID on a second process (same data dir and port, started
after the first exited) and gets the rest of its job's log: no event lost, none repeated.

Five clients follow a running job (the second process's recovery runs it again), five a job
queued behind it. The clients are real aiohttp SSE readers that behave as EventSource does:
reconnect after the server's `retry:` with the last id they saw.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from scenarios import TERMINAL, post_job
from server_harness import ResumingWatcher, free_port, spawn_server, stop_process, stream_events

UVICORN_CONFIG = Path(__file__).resolve().parents[2] / "uvicorn_config.json"
GRACE_S = json.loads(UVICORN_CONFIG.read_text())["timeout_graceful_shutdown"]
#: The whole scenario's bound: two server starts, the running job run again, the queued one run.
SCENARIO_S = 240.0

pytestmark = pytest.mark.slow


def test_sigterm_closes_10_streams_with_retry_exits_in_time_and_clients_resume_on_a_second_process(
    tmp_path, tiny_model_repo, make_clip
):
    env = {
        "MUSICSEP_DATA_DIR": str(tmp_path / "data"),
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "MUSICSEP_MAX_CONCURRENT": "1",
        "MUSICSEP_SSE_RETRY_MS": "200",
    }
    port, log = free_port(), tmp_path / "server.log"
    config = ("--config", str(UVICORN_CONFIG))
    first = spawn_server(env, log, port, config)
    second = None
    try:
        running = post_job(first.url, make_clip(seconds=10.0), analyze="false")
        queued = post_job(first.url, make_clip(seconds=1.0, seed=1), analyze="false")
        assert queued["position"] == 1
        watchers = [ResumingWatcher(first.url + job["events_url"]) for job in [running] * 5 + [queued] * 5]

        async def scenario() -> float:
            nonlocal second
            deadline = time.monotonic() + SCENARIO_S
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=60)) as session:
                follows = [asyncio.ensure_future(w.follow(session, deadline)) for w in watchers]
                await asyncio.wait_for(asyncio.gather(*(w.live.wait() for w in watchers)), 60)
                assert not any(w.events[-1][1] in TERMINAL for w in watchers), "the job ended too soon"
                started = time.monotonic()
                first.process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(first.process.wait, GRACE_S + 5)
                took = time.monotonic() - started
                # uvicorn re-raises the signal it caught once it has shut down.
                assert code in (0, -signal.SIGTERM)
                second = await asyncio.to_thread(spawn_server, env, log, port, config)
                await asyncio.wait_for(asyncio.gather(*follows), max(1.0, deadline - time.monotonic()))
            return took

        try:
            took = asyncio.run(scenario())
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server had not exited {GRACE_S + 5} s after SIGTERM: {log.read_text()[-3000:]}")
        print(f"SIGTERM to exit with 10 open streams: {took:.2f} s (grace {GRACE_S} s)")
        assert took <= GRACE_S + 1
        for job in (running, queued):
            status, full = stream_events(second.url + job["events_url"])
            log_ids = [(event_id, kind) for event_id, kind, _ in full]
            assert status == 200 and log_ids[-1][1] == "completed"
            # A graceful stop counts no attempt: neither the stopped job nor the one queued behind
            # it (which the freed slot must not start while the server is stopping).
            assert httpx.get(second.url + job["status_url"]).json()["attempts"] == 1
            for watcher in watchers:
                if watcher.url.endswith(job["events_url"]):
                    assert watcher.events == log_ids and watcher.refusals == []
                    # The first connection was closed by the shutdown, with `retry:` and a reason.
                    assert ": closing: the server is shutting down" in watcher.endings[0]
                    assert "retry: 200" in watcher.endings[0]
    finally:
        stop_process(first.process)
        if second is not None:
            stop_process(second.process)
