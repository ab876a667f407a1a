"""Many watchers see one log; resuming with Last-Event-ID misses nothing.

The scenarios live in tests/scenarios.py; tests/scaleout/test_cluster_scenarios.py runs the same ones
on the scale-out deployment (Celery, S3, two API processes).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from musicsep.clients.sse import SSEParser
from scenarios import (
    TERMINAL,
    engine_stems,
    post_job,
    resume_at_random_points,
    run_to_end,
    three_watchers_see_one_log,
)
from server_harness import stream_events, wait_until


def test_three_watchers_see_the_same_log_and_stems_equal_the_engine(live_server, make_clip, tiny_model_repo, tmp_path):
    server = live_server()
    clip = make_clip(seconds=6.0)
    three_watchers_see_one_log([server.url], clip, engine_stems(clip, tiny_model_repo, tmp_path / "engine"))


def test_post_separate_streams_the_same_protocol(live_server, make_clip):
    server = live_server()
    clip = make_clip(seconds=4.0)
    parser = SSEParser()
    streamed = []
    with (
        clip.open("rb") as handle,
        httpx.stream(
            "POST",
            f"{server.url}/api/v1/separate",
            files={"file": ("song.wav", handle)},
            headers={"Accept": "text/event-stream"},
            timeout=120,
        ) as response,
    ):
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
        response = httpx.post(
            f"{server.url}/api/v1/separate",
            files={"file": ("song.wav", handle)},
            data={"stems": "vocals"},
            headers={"Accept": "application/json"},
            timeout=120,
        )
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "completed"
    assert set(job["stems"]) == {"vocals"}
    assert httpx.get(server.url + job["stems"]["vocals"]["url"]).status_code == 200


def test_resume_at_random_points_yields_exactly_the_log(live_server, make_clip):
    """At least 20 disconnects at seeded-random points, live and after the end; nothing missed or doubled."""
    resume_at_random_points([live_server().url], make_clip(seconds=30.0))


def _follow_until_end(
    url: str, last_event_id: str, deadline_s: float, opened: threading.Event | None = None
) -> tuple[int, list[tuple[int, str]], bool]:
    """Read a stream with `Last-Event-ID`; (status, [(id, type)], whether it ended by itself before
    `deadline_s`). `opened` is set at the first byte. Pings (sse_ping_s=0.5 in these tests) keep
    chunks coming, so the deadline is checked often even when no event arrives."""
    parser = SSEParser()
    events: list[tuple[int, str]] = []
    deadline = time.monotonic() + deadline_s
    with httpx.stream("GET", url, headers={"Last-Event-ID": last_event_id}, timeout=30) as response:
        if response.status_code != 200:
            return response.status_code, events, True
        for text in response.iter_text():
            if opened is not None:
                opened.set()
            events += [(int(m.id or 0), m.event) for m in parser.feed(text)]
            if time.monotonic() > deadline:
                return response.status_code, events, False
    return response.status_code, events, True


def test_last_event_id_beyond_the_log_ends_with_the_terminal_event_instead_of_pinging_forever(live_server, make_clip):
    """A cursor past the log on a running or queued job waited for ids that never come,
    pinging after the job's end. Now it waits for the job and ends with its terminal event."""
    server = live_server(max_concurrent=1, sse_ping_s=0.5)
    running = post_job(server.url, make_clip(seconds=40.0), analyze="false")
    queued = post_job(server.url, make_clip(seconds=2.0, seed=1), analyze="false")
    assert queued["position"] == 1
    results: dict[str, tuple] = {}
    opened = {"running": threading.Event(), "queued": threading.Event()}

    def watch(name: str, job: dict) -> None:
        results[name] = _follow_until_end(server.url + job["events_url"], "1000", 30, opened[name])

    watchers = [
        threading.Thread(target=watch, args=(name, job)) for name, job in (("running", running), ("queued", queued))
    ]
    for thread in watchers:
        thread.start()
    wait_until(lambda: all(event.is_set() for event in opened.values()), 30, "both streams to open")
    for job in (queued, running):
        assert httpx.delete(f"{server.url}/api/v1/jobs/{job['job_id']}").status_code == 202
    for thread in watchers:
        thread.join(timeout=60)
    for name, job in (("running", running), ("queued", queued)):
        status, events, ended = results[name]
        log = [(event_id, kind) for event_id, kind, _ in stream_events(server.url + job["events_url"])[1]]
        assert status == 200 and ended, (name, events)
        assert events == [log[-1]] and log[-1][1] == "cancelled", (name, events, log)
        # After that, the same cursor is answered at once: the job is over.
        assert httpx.get(server.url + job["events_url"], headers={"Last-Event-ID": "1000"}).status_code == 204


# Headers reach the server as latin-1: "²" is the byte 0xb2; Arabic-Indic digits come as UTF-8 bytes.
@pytest.mark.parametrize(
    "header",
    [
        "²".encode("latin-1"),
        "¹³".encode("latin-1"),
        "1²".encode("latin-1"),
        "٣".encode(),
        "+1",
        "1 2",
        "0x10",
        "9" * 40,
    ],
)
def test_non_ascii_digits_and_malformed_last_event_id_answer_400_not_500(live_server, make_clip, header):
    """`"²".isdigit()` is true and `int("²")` raises: a 500. Only ASCII digits (at most
    18) are a cursor; anything else is a 400 with the error envelope."""
    server = live_server()
    job = post_job(server.url, make_clip(seconds=1.0), analyze="false")
    run_to_end(server.url, job)
    reply = httpx.get(server.url + job["events_url"], headers={"Last-Event-ID": header})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_last_event_id"


def test_an_empty_last_event_id_is_no_cursor(live_server, make_clip):
    server = live_server()
    job = post_job(server.url, make_clip(seconds=1.0), analyze="false")
    events = run_to_end(server.url, job)
    status, replayed = stream_events(server.url + job["events_url"], headers={"Last-Event-ID": ""})
    assert status == 200 and replayed == events
