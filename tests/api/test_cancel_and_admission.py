"""Cancel and admission as HTTP shows them: a client that leaves a POST /separate stream cancels
its job; a full queue answers 503 with Retry-After and the error envelope; wait=false answers
503 `busy`; /health counts the queue; DELETE answers 202.

The service's own rules (capacity, priorities, positions moving, cancel of queued and running
jobs, the slot freed only after the worker thread ended) are tested deterministically and in
milliseconds in tests/service/test_job_service.py; this file keeps what only a real server on
127.0.0.1 can show. The disconnect scenario lives in tests/scenarios.py (also run on the
scale-out deployment).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from http_target import stalling_target
from scenarios import disconnect_cancels_post_separate, post_job, post_url_job


@contextmanager
def stalled_download() -> Iterator[str]:
    """The URL of a file whose server takes the request and answers nothing until the block ends.

    An `audio_url` job downloads its input inside its pipeline, so it holds its run slot for as
    long as this server is silent, without any model running: the deterministic way to keep the
    one slot busy through public behaviour (instead of holding a private lock of the loader).
    On the way out the server answers 404, and the job fails at once.
    """
    with stalling_target() as (base, _arrived, _release):
        yield f"{base}/song.wav"


def _submit(url: str, clip) -> httpx.Response:
    with clip.open("rb") as handle:
        return httpx.post(f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, timeout=60)


def test_disconnect_cancels_and_the_next_job_starts_after_the_thread_ended(live_server, make_clip):
    server = live_server(max_concurrent=1)
    # 30 s is ~15 chunks of the tiny model: the disconnect at the first progress event stops it
    # at well under 1 % (measured 0.25 %), far from the end the scenario asserts it never reaches.
    first_id, second = disconnect_cancels_post_separate([server.url], make_clip(seconds=30.0), make_clip(seconds=2.0))
    assert second["position"] == 1
    # The service's own record of its worker threads, with the real engine's cancel: the first
    # one ended before the second began.
    records = server.service.admission.runner.records()
    first_end = next(r.at for r in records if r.job_id == first_id and r.what == "end")
    second_start = next(r.at for r in records if r.job_id == second["job_id"] and r.what == "start")
    assert first_end <= second_start
    assert server.service.admission.runner.live == 0


def test_full_queue_503_with_retry_after_wait_false_503_busy_health_counts_and_delete_202(live_server, make_clip):
    server = live_server(max_concurrent=1, queue_size=2, allow_loopback_urls=True)
    clip = make_clip(seconds=1.0)
    with stalled_download() as audio_url:
        running = post_url_job(server.url, audio_url, analyze=False)  # holds the one slot in its download
        assert running["position"] == 0
        queued = [post_job(server.url, clip) for _ in range(2)]
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
        for job in queued:  # no model runs in this test: the queued jobs are cancelled before a slot frees
            assert httpx.delete(f"{server.url}/api/v1/jobs/{job['job_id']}").status_code == 202
            assert httpx.get(server.url + job["status_url"]).json()["status"] == "cancelled"
        assert httpx.get(f"{server.url}/health").json()["queue_depth"] == 0
