"""SSE promises: per-job and per-caller limits on open event streams (429 with
Retry-After and the error envelope), and a maximum stream lifetime after which the stream closes
cleanly with `retry:` and the client resumes with Last-Event-ID, losing and repeating nothing."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import httpx

from musicsep.clients.sse import SSEParser
from scenarios import TERMINAL, post_job, run_to_end
from server_harness import wait_until

KEYS = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]


def _open(stack: ExitStack, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """An event stream held open by `stack`, once its first byte (the `retry:` line) came."""
    response = stack.enter_context(httpx.stream("GET", url, headers=headers, timeout=30))
    if response.status_code == 200:
        # Kept referenced until the stack closes: a dropped iterator closes its response.
        chunks = response.iter_raw()
        next(chunks)
        stack.callback(chunks.close)
    else:
        response.read()
    return response


def _open_streams(api: str, headers: dict[str, str] | None = None) -> int:
    reply = httpx.get(f"{api}/metrics", headers=headers, timeout=10)
    line = next(line for line in reply.text.splitlines() if line.startswith("musicsep_event_streams "))
    return int(float(line.split()[1]))


def _assert_429(response: httpx.Response, words: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"].isdigit()
    error = response.json()["error"]
    assert error["code"] == "too_many_streams" and words in error["message"] and error["request_id"]


def test_streams_past_the_per_job_and_per_caller_limits_get_429_until_one_closes(live_server, make_clip):
    server = live_server(max_concurrent=1, sse_max_streams_per_job=2, sse_max_streams_per_caller=3)
    running = post_job(server.url, make_clip(seconds=40.0), analyze="false")
    queued = post_job(server.url, make_clip(seconds=1.0, seed=1), analyze="false")
    on_running, on_queued = server.url + running["events_url"], server.url + queued["events_url"]
    with ExitStack() as outer:
        with ExitStack() as inner:
            first = _open(inner, on_running)
            assert _open(outer, on_running).status_code == 200
            _assert_429(_open(outer, on_running), "this job already has 2")
            assert _open(outer, on_queued).status_code == 200
            # Three streams from this address (no auth: the caller is the client address).
            _assert_429(_open(outer, on_queued), "you already have 3")
            assert first.status_code == 200 and _open_streams(server.url) == 3
        # The client closed one: its slot is given back as soon as the server sees it go.
        wait_until(lambda: _open_streams(server.url) == 2, 10, "the closed stream's slot to come back")
        assert _open(outer, on_running).status_code == 200
        # A reconnect after the end is a 204 and takes no slot, even with every slot in use.
        httpx.delete(f"{server.url}/api/v1/jobs/{queued['job_id']}")
        wait_until(lambda: _open_streams(server.url) == 2, 10, "the queued job's stream to end")
        assert httpx.get(on_queued, headers={"Last-Event-ID": "1000"}).status_code == 204
        httpx.delete(f"{server.url}/api/v1/jobs/{running['job_id']}")
    wait_until(lambda: _open_streams(server.url) == 0, 10, "every stream to end")


def test_the_per_caller_limit_counts_each_api_key_apart(live_server, make_clip):
    server = live_server(max_concurrent=1, api_keys=KEYS, sse_max_streams_per_caller=1)
    first, second = ({"Authorization": f"Bearer {key}"} for key in KEYS)
    with make_clip(seconds=40.0).open("rb") as handle:
        job = httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}, headers=first, data={"analyze": "false"}
        ).json()
    url = server.url + f"/api/v1/jobs/{job['job_id']}/events"
    with ExitStack() as stack:
        assert _open(stack, url, first).status_code == 200
        # The same key sent as X-API-Key is the same caller.
        _assert_429(_open(stack, url, {"X-API-Key": KEYS[0]}), "you already have 1")
        assert _open(stack, url, second).status_code == 200
        httpx.delete(f"{server.url}/api/v1/jobs/{job['job_id']}", headers=first)


def test_a_stream_past_its_lifetime_closes_with_retry_and_resumes_without_loss(live_server, make_clip):
    """Lifetime 0.3 s on a job that runs for seconds (a minute of audio: about 6 s on a quiet
    2-core machine, 20 lifetimes): the stream closes again and again with `retry:` and a
    comment, each reconnect sends Last-Event-ID, and the events put together are exactly the
    job's log. (A 10 s clip once finished within two lifetimes on a quiet machine.)"""
    server = live_server(sse_max_lifetime_s=0.3, sse_retry_ms=50, sse_ping_s=0.25)
    job = post_job(server.url, make_clip(seconds=60.0), analyze="false")
    url = server.url + job["events_url"]
    collected: list[tuple[int, str, dict]] = []
    closes: list[str] = []
    deadline = time.monotonic() + 120
    while not (collected and collected[-1][1] in TERMINAL):
        assert time.monotonic() < deadline, "the job did not finish in time"
        headers = {"Last-Event-ID": str(collected[-1][0])} if collected else {}
        parser, tail = SSEParser(), ""
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            assert response.status_code == 200
            opened = time.monotonic()
            for text in response.iter_text():
                tail = (tail + text)[-400:]
                collected += [(int(m.id), m.event, json.loads(m.data)) for m in parser.feed(text)]
        if collected[-1][1] not in TERMINAL:
            assert time.monotonic() - opened < 10
            closes.append(tail)
        assert parser.retry_ms == 50
    assert len(closes) >= 2, "the job ended before the stream reached its lifetime twice"
    for tail in closes:
        # After the last event (a keep-alive comment may still follow it: comments are no events).
        farewell = tail[max(tail.rfind("data: "), 0) :]
        assert ": closing: this stream reached its maximum lifetime" in farewell and "retry: 50\r\n" in farewell
    assert collected == run_to_end(server.url, job)
