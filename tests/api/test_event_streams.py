"""Must-be-true 1 and 2: many watchers see one log; resuming with Last-Event-ID misses nothing.

The scenarios live in tests/scenarios.py; tests/dist/test_cluster_scenarios.py runs the same ones
on the scale-out deployment (Celery, S3, two API processes).
"""

from __future__ import annotations

import json

import httpx

from musicsep.clients.sse import SSEParser
from scenarios import TERMINAL, engine_stems, resume_at_random_points, three_watchers_see_one_log
from server_harness import stream_events


def test_three_watchers_see_the_same_log_and_stems_equal_the_engine(live_server, make_clip, tiny_model_repo, tmp_path):
    server = live_server()
    clip = make_clip(seconds=6.0)
    three_watchers_see_one_log([server.url], clip, engine_stems(clip, tiny_model_repo, tmp_path / "engine"))


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
    status, replayed = stream_events(f"{server.url}/api/v1/jobs/{job_id}/events")
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


def test_resume_at_random_points_yields_exactly_the_log(live_server, make_clip):
    """At least 20 disconnects at seeded-random points, live and after the end; nothing missed or doubled."""
    resume_at_random_points([live_server().url], make_clip(seconds=30.0))
