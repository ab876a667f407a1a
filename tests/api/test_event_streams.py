"""Must-be-true 1 and 2: many watchers see one log; resuming with Last-Event-ID misses nothing."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import aiohttp
import httpx
import numpy as np
import soundfile as sf

from musicsep.clients.sse import SSEParser
from server_harness import stream_events

TERMINAL = {"completed", "failed", "cancelled"}


async def _watch(url: str) -> tuple[Any, bytes, list[tuple[int, str, dict]]]:
    parser = SSEParser()
    events: list[tuple[int, str, dict]] = []
    raw = b""
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=120)) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            raw += chunk
            for message in parser.feed(chunk.decode()):
                events.append((int(message.id), message.event, json.loads(message.data)))
                if message.event in TERMINAL:
                    return resp.headers.copy(), raw, events
    return resp.headers.copy(), raw, events


def _engine_stems(clip, tiny_model_repo, out_dir) -> dict[str, np.ndarray]:
    from musicsep.model.loading import ModelLoader
    from musicsep.model.separate import SeparationRequest, separate_file

    result = separate_file(clip, out_dir, SeparationRequest(model="tiny_htdemucs", device="cpu"),
                           loader=ModelLoader(repo=tiny_model_repo, offline=True))
    return {name: sf.read(path, dtype="int16")[0] for name, path in result.stems.items()}


def test_three_watchers_see_the_same_log_and_stems_equal_the_engine(live_server, make_clip, tiny_model_repo, tmp_path):
    server = live_server()
    clip = make_clip(seconds=6.0)
    with clip.open("rb") as handle:
        accepted = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", handle)}).json()
    url = server.url + accepted["events_url"]

    async def three() -> list:
        return await asyncio.gather(*(_watch(url) for _ in range(3)))

    watched = asyncio.run(three())
    sequences = [events for _, _, events in watched]
    assert sequences[0] == sequences[1] == sequences[2]
    events = sequences[0]
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    assert all(data["event"] == kind for _, kind, data in events)
    assert [kind for _, kind, _ in events if kind in TERMINAL] == ["completed"]
    assert events[-1][1] == "completed"
    assert {"queued", "started", "progress", "analysis", "stem"} <= {kind for _, kind, _ in events}
    analysis = events[-1][2]["analysis"]
    assert abs(analysis["duration_s"] - 6.0) < 0.05
    assert {"tempo", "key", "loudness"} <= set(analysis)
    headers, raw, _ = watched[0]
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert raw.startswith(b"retry: ")

    expected = _engine_stems(clip, tiny_model_repo, tmp_path / "engine")
    stems = events[-1][2]["stems"]
    assert set(stems) == set(expected)
    for name, info in stems.items():
        body = httpx.get(server.url + info["url"]).content
        assert len(body) == info["bytes"]
        (tmp_path / f"{name}.wav").write_bytes(body)
        served = sf.read(tmp_path / f"{name}.wav", dtype="int16")[0]
        np.testing.assert_array_equal(served, expected[name])

    # A reconnect after the terminal event is told there is nothing more.
    last = events[-1][0]
    assert httpx.get(url, headers={"Last-Event-ID": str(last)}).status_code == 204


def test_post_separate_streams_the_same_protocol(live_server, make_clip):
    server = live_server()
    clip = make_clip(seconds=4.0)
    parser = SSEParser()
    streamed = []
    with clip.open("rb") as handle, httpx.stream(
        "POST", f"{server.url}/api/v1/separate", files={"file": ("song.wav", handle)},
        headers={"Accept": "text/event-stream"}, timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        job_id = response.headers["x-job-id"]
        for text in response.iter_text():
            for message in parser.feed(text):
                streamed.append((int(message.id), message.event, json.loads(message.data)))
    assert parser.retry_ms is not None
    assert [event_id for event_id, _, _ in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1][1] == "completed"
    assert [kind for _, kind, _ in streamed if kind in TERMINAL] == ["completed"]
    # The same log as any GET watcher of that job sees.
    status, replayed = _replay(f"{server.url}/api/v1/jobs/{job_id}/events")
    assert status == 200 and replayed == streamed


def test_post_separate_with_accept_json_answers_when_done(live_server, make_clip):
    server = live_server()
    with make_clip(seconds=3.0).open("rb") as handle:
        response = httpx.post(f"{server.url}/api/v1/separate", files={"file": ("song.wav", handle)},
                              data={"stems": "vocals"}, headers={"Accept": "application/json"}, timeout=120)
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "completed"
    assert set(job["stems"]) == {"vocals"}
    assert httpx.get(server.url + job["stems"]["vocals"]["url"]).status_code == 200


def _replay(url: str, after: int = 0, stop_after: int | None = None) -> tuple[int, list]:
    return stream_events(url, last_event_id=after, stop_after=stop_after)


def test_resume_at_random_points_yields_exactly_the_log(live_server, make_clip):
    """At least 20 disconnects at seeded-random points, live and after the end; nothing missed or doubled."""
    server = live_server()
    with make_clip(seconds=30.0).open("rb") as handle:
        job_id = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", handle)}).json()["job_id"]
    url = f"{server.url}/api/v1/jobs/{job_id}/events"
    rng = random.Random(20240601)
    received: list = []
    reconnects = 0
    for _ in range(500):  # bounded: each pass reads at least one event or ends
        status, events = _replay(url, after=received[-1][0] if received else 0, stop_after=rng.randint(1, 2))
        if status == 204:
            break
        assert status == 200
        received.extend(events)
        reconnects += 1
    assert reconnects >= 20
    status, full = _replay(url)
    assert received == full
    assert [event_id for event_id, _, _ in received] == list(range(1, len(received) + 1))
