"""Must-be-true 3 and 4: disconnect cancels and frees the slot only after the thread ends;
a full queue answers 503 with Retry-After; positions are reported and move.

The disconnect scenario lives in tests/scenarios.py (also run on the scale-out deployment); the
runner's thread records and the in-process queue's positions are embedded-only."""

from __future__ import annotations

import httpx

from scenarios import disconnect_cancels_post_separate
from server_harness import stream_events


def _submit(url: str, clip, **fields: str) -> httpx.Response:
    with clip.open("rb") as handle:
        return httpx.post(f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data=fields, timeout=60)


def test_disconnect_cancels_and_the_next_job_starts_after_the_thread_ended(live_server, make_clip):
    server = live_server(max_concurrent=1)
    first_id, second = disconnect_cancels_post_separate([server.url], make_clip(seconds=120.0),
                                                        make_clip(seconds=2.0))
    assert second["position"] == 1
    # The service's own record of its worker threads: the first one ended before the second began.
    records = server.service.runner.records()
    first_end = next(r.at for r in records if r.job_id == first_id and r.what == "end")
    second_start = next(r.at for r in records if r.job_id == second["job_id"] and r.what == "start")
    assert first_end <= second_start
    assert server.service.runner.live == 0


def test_full_queue_503_wait_false_503_and_positions_move(live_server, make_clip):
    server = live_server(max_concurrent=1, queue_size=2)
    clip = make_clip(seconds=2.0)
    # Hold the real model loader busy so the first job stays running for as long as the test needs.
    with server.service.loader._lock:
        running = _submit(server.url, clip).json()
        assert running["position"] == 0
        queued = [_submit(server.url, clip).json() for _ in range(2)]
        assert [job["position"] for job in queued] == [1, 2]

        refused = _submit(server.url, clip)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "queue_full"
        with clip.open("rb") as handle:
            busy = httpx.post(f"{server.url}/api/v1/separate?wait=false", files={"file": ("a.wav", handle)})
        assert busy.status_code == 503
        assert busy.json()["error"]["code"] == "busy"
        assert "retry-after" in busy.headers

        health = httpx.get(f"{server.url}/health").json()
        assert health["queue_depth"] == 2 and health["running"] == 1
        assert httpx.delete(f"{server.url}/api/v1/jobs/{queued[0]['job_id']}").status_code == 202
    for job in (running, queued[1]):
        status, events = stream_events(server.url + job["events_url"])
        assert events[-1][1] == "completed"
    _, last_events = stream_events(server.url + queued[1]["events_url"])
    positions = [data["position"] for _, kind, data in last_events if kind == "queued"]
    assert positions == [2, 1]
    _, cancelled = stream_events(server.url + queued[0]["events_url"])
    assert cancelled[-1][1] == "cancelled"
