"""Idempotency keys on the embedded server.

A key reused with a different body silently returned the first job, and a replay of an existing
key while the queue was full got 503 instead of its job. "The same body" is the JobSpec's options
plus the input: the SHA-256 of the uploaded bytes, or the audio_url. The same scenario runs on the
scale-out deployment in tests/scaleout/test_cluster_scenarios.py.
"""

from __future__ import annotations

import httpx

from http_target import stalling_target
from scenarios import idempotency_replays_and_conflicts
from server_harness import wait_until


def test_same_key_same_body_replays_and_another_body_is_409(live_server, make_clip):
    server = live_server()
    idempotency_replays_and_conflicts([server.url], make_clip(seconds=1.0), "song-1")


def test_a_key_reused_with_another_audio_url_is_409(live_server):
    """URL jobs: the URL is part of the body. Loopback with the allowance off: refused, never fetched."""
    server = live_server()
    body = {"audio_url": "http://127.0.0.1:9/a.wav", "idempotency_key": "url-1", "analyze": False}
    first = httpx.post(f"{server.url}/api/v1/jobs", json=body, timeout=30)
    assert first.status_code == 202
    same = httpx.post(f"{server.url}/api/v1/jobs", json=body, timeout=30)
    assert same.status_code == 202 and same.json()["job_id"] == first.json()["job_id"]
    other = httpx.post(f"{server.url}/api/v1/jobs", json={**body, "audio_url": "http://127.0.0.1:9/b.wav"}, timeout=30)
    assert other.status_code == 409
    assert other.json()["error"]["job_id"] == first.json()["job_id"]


def test_a_replay_while_the_queue_is_full_is_the_first_job_not_503(live_server, make_clip):
    server = live_server(max_concurrent=1, queue_size=1, allow_loopback_urls=True)
    clip = make_clip(seconds=1.0).read_bytes()
    fields = {"idempotency_key": "full-1", "analyze": "false"}

    def post(**extra: str) -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": ("song.wav", clip)}, data={**fields, **extra}, timeout=30
        )

    with stalling_target() as (url, arrived, release):
        slow = httpx.post(f"{server.url}/api/v1/jobs", json={"audio_url": f"{url}/slow"}, timeout=30)
        assert slow.status_code == 202
        wait_until(arrived.is_set, 30, "the URL job to hold the only slot")
        queued = post()
        assert queued.status_code == 202 and queued.json()["position"] == 1
        keyless = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", clip)}, timeout=30)
        assert keyless.status_code == 503  # the queue is full
        replay = post()
        assert replay.status_code == 202, replay.text
        assert replay.json()["job_id"] == queued.json()["job_id"]
        assert replay.headers["idempotent-replayed"] == "true"
        conflict = post(stems="vocals")
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["job_id"] == queued.json()["job_id"]
        assert httpx.delete(f"{server.url}/api/v1/jobs/{queued.json()['job_id']}").status_code == 202
        release.set()
