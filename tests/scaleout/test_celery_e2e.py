"""Scale-out end to end: two API processes, Celery workers as subprocesses, one Redis.

Resume on the other node, kill -9 of a worker, priorities and cancel. Storage here is the shared
local data dir; test_cluster_scenarios.py runs the server's own end-to-end scenarios with
MUSICSEP_STORAGE=s3.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import zipfile

import httpx
import pytest

from http_target import http_target
from musicsep.clients.webhooks import verify_webhook
from musicsep.scaleout.redis_events import RedisEventLog
from musicsep.scaleout.redis_store import RedisStore

from .scaleout import ScaleOut, cluster_env, harness, s3_env, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TERMINAL = ("completed", "failed", "cancelled")
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"the secret of this test cluster!").decode()


@pytest.fixture
def scaleout(tmp_path, tiny_model_repo, redis_url, redis_prefix):
    logs = tmp_path / "logs"
    logs.mkdir()
    env = cluster_env(tmp_path / "data", tiny_model_repo, redis_url, redis_prefix)
    cluster = ScaleOut({**env, "MUSICSEP_WEBHOOK_SECRET": WEBHOOK_SECRET}, logs)
    yield cluster
    cluster.stop()


def submit(api: str, clip, **fields) -> str:
    with clip.open("rb") as handle:
        reply = httpx.post(
            f"{api}/api/v1/jobs",
            files={"file": (clip.name, handle, "audio/wav")},
            data={k: str(v) for k, v in fields.items()},
            timeout=60,
        )
    assert reply.status_code == 202, reply.text
    return reply.json()["job_id"]


def test_a_client_resuming_on_the_other_api_node_misses_nothing_and_sees_nothing_twice(scaleout, make_clip):
    """With the shared local data dir (test_cluster_scenarios.py runs the S3 variant, and more)."""
    node_a, node_b = scaleout.api(), scaleout.api()
    scaleout.worker("w1")
    job = submit(node_a, make_clip(seconds=6.0), analyze="false")
    status, first = harness.stream_events(f"{node_b}/api/v1/jobs/{job}/events", stop_after=3)
    assert status == 200 and len(first) == 3
    status, rest = harness.stream_events(f"{node_a}/api/v1/jobs/{job}/events", last_event_id=first[-1][0])
    events = first + rest
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    assert [e[1] for e in events if e[1] in TERMINAL] == ["completed"]
    assert [e[1] for e in events][:2] == ["queued", "started"]
    stems = events[-1][2]["stems"]
    assert set(stems) == {"drums", "bass", "other", "vocals"}
    for node in (node_a, node_b):
        reply = httpx.get(node + stems["vocals"]["url"], timeout=30)
        assert reply.status_code == 200 and len(reply.content) == stems["vocals"]["bytes"]
    public = httpx.get(f"{node_b}/api/v1/jobs/{job}", timeout=10).json()
    assert public["status"] == "completed"
    archive = httpx.get(node_b + public["zip_url"], timeout=30)
    assert archive.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == sorted(f"{name}.wav" for name in stems)
    terminal_id = events[-1][0]
    assert harness.stream_events(f"{node_b}/api/v1/jobs/{job}/events", last_event_id=terminal_id)[0] == 204


def events_of(api: str, job: str, after: int = 0) -> list[tuple[int, str, dict]]:
    status, events = harness.stream_events(f"{api}/api/v1/jobs/{job}/events", last_event_id=after)
    assert status == 200
    return events


def first_progress(api: str, job: str) -> list[tuple[int, str, dict]]:
    """The job's events up to and including its first `progress` (it is running)."""
    seen: list[tuple[int, str, dict]] = []
    for _ in range(20):
        _, more = harness.stream_events(f"{api}/api/v1/jobs/{job}/events", last_event_id=len(seen), stop_after=1)
        seen += more
        if seen[-1][1] == "progress":
            return seen
    raise AssertionError(f"no progress event: {seen}")


def test_cancel_of_a_queued_and_of_a_running_job_ends_each_with_one_cancelled_event_and_one_webhook(
    scaleout, make_clip
):
    api = scaleout.api()
    with http_target() as receiver:
        hook = f"{receiver.url}/hook"
        queued = submit(api, make_clip(seconds=4.0), analyze="false", webhook_url=hook)
        assert httpx.delete(f"{api}/api/v1/jobs/{queued}", timeout=10).status_code == 202
        assert [e[1] for e in events_of(api, queued)] == ["queued", "cancelled"]

        scaleout.worker("w1")
        running = submit(api, make_clip(seconds=30.0), analyze="false", webhook_url=hook)
        seen = first_progress(api, running)
        assert httpx.delete(f"{api}/api/v1/jobs/{running}", timeout=10).status_code == 202
        rest = events_of(api, running, after=seen[-1][0])
        events = seen + rest
        assert [e[1] for e in events if e[1] in TERMINAL] == ["cancelled"]
        assert events[-1][2]["reason"] == "cancelled by request"
        last_progress = [e[2] for e in events if e[1] == "progress"][-1]
        # Below 100 %: it stopped (a cancel seen before the first chunk leaves only the decode's 0 of 0 chunks).
        assert last_progress["percent"] < 100.0, "the job ran to its end instead of stopping"

        # The worker is free again: the next job runs, and its webhook comes after the others'.
        after = submit(api, make_clip(seconds=3.0), analyze="false", webhook_url=hook)
        assert events_of(api, after)[-1][1] == "completed"
        wait_until(lambda: len(receiver.posts) >= 3, 60, "three webhooks")
        for job in (queued, running):
            assert [e[1] for e in events_of(api, job) if e[1] in TERMINAL] == ["cancelled"]
            assert httpx.get(f"{api}/api/v1/jobs/{job}", timeout=10).json()["status"] == "cancelled"
    messages = [verify_webhook(body, headers, WEBHOOK_SECRET) for headers, body in receiver.posts]
    by_job = {m["data"]["job_id"]: m["type"] for m in messages}
    assert by_job == {queued: "job.cancelled", running: "job.cancelled", after: "job.completed"}
    assert len(messages) == 3
    assert all(json.loads(body)["data"]["event"] in TERMINAL for _, body in receiver.posts)


def test_a_priority_5_job_starts_before_the_priority_1_jobs_queued_ahead_of_it(scaleout, make_clip):
    api = scaleout.api()
    clip = make_clip(seconds=2.0)
    low = [submit(api, clip, priority=1, analyze="false") for _ in range(20)]
    urgent = submit(api, clip, priority=5, analyze="false")
    scaleout.worker("w1")
    assert events_of(api, urgent)[-1][1] == "completed"
    for job in low:
        httpx.delete(f"{api}/api/v1/jobs/{job}", timeout=10)
    started_at = {job: httpx.get(f"{api}/api/v1/jobs/{job}", timeout=10).json().get("started_at") for job in low}
    urgent_started = httpx.get(f"{api}/api/v1/jobs/{urgent}", timeout=10).json()["started_at"]
    before = [job for job, at in started_at.items() if at is not None and at < urgent_started]
    assert len(before) <= 1


def stem_bytes(api: str, events: list[tuple[int, str, dict]]) -> dict[str, bytes]:
    stems = events[-1][2]["stems"]
    return {name: httpx.get(api + info["url"], timeout=30).content for name, info in stems.items()}


def test_a_job_whose_worker_is_killed_runs_again_elsewhere_with_a_clean_runs_stems(scaleout, make_clip):
    scaleout.env["MUSICSEP_VISIBILITY_TIMEOUT_S"] = "3"
    api = scaleout.api()
    clip = make_clip(seconds=20.0)
    first = scaleout.worker("w1")
    job = submit(api, clip, analyze="false")
    first_progress(api, job)
    first.kill()
    scaleout.worker("w2")
    events = events_of(api, job)
    assert [e[1] for e in events if e[1] in TERMINAL] == ["completed"]
    assert [e[1] for e in events].count("started") == 2
    assert any(e[1] == "queued" and "runs again" in e[2].get("reason", "") for e in events)
    assert (
        RedisStore.from_url(scaleout.env["MUSICSEP_REDIS_URL"], scaleout.env["MUSICSEP_REDIS_PREFIX"])
        .get_job(job)
        .attempts
        == 2
    )
    clean = submit(api, clip, analyze="false")
    clean_events = events_of(api, clean)
    assert stem_bytes(api, events) == stem_bytes(api, clean_events)


def test_a_job_that_kills_its_worker_three_times_fails_with_a_reason(scaleout, make_clip):
    scaleout.env["MUSICSEP_VISIBILITY_TIMEOUT_S"] = "3"
    env = scaleout.env
    api = scaleout.api()
    log = RedisEventLog(env["MUSICSEP_REDIS_URL"], env["MUSICSEP_REDIS_PREFIX"])
    job = submit(api, make_clip(seconds=30.0), analyze="false")
    for attempt in (1, 2, 3):
        worker = scaleout.worker(f"w{attempt}")

        def running_again(n: int = attempt) -> bool:
            events = log.read(job)
            return sum(e.type == "started" for e in events) == n and events[-1].type == "progress"

        wait_until(running_again, 120, f"attempt {attempt} to run")
        worker.kill()
    scaleout.worker("w4")
    events = events_of(api, job)
    assert events[-1][1] == "failed"
    assert events[-1][2]["code"] == "worker_lost"
    assert "stopped 3 times" in events[-1][2]["message"]
    assert [e[1] for e in events if e[1] in TERMINAL] == ["failed"]
    log.close()


def test_a_worker_that_cannot_reach_the_bucket_fails_the_job_with_a_reason(scaleout, make_clip, s3_endpoint):
    """Storage failing around the separation (here: the worker's S3 endpoint is a closed port,
    while the API's is the real one) ends the job with a `failed` event; it is never left running."""
    scaleout.env.update(s3_env(s3_endpoint))
    api = scaleout.api()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    scaleout.worker("w1", {"MUSICSEP_S3_ENDPOINT_URL": dead_endpoint, "AWS_MAX_ATTEMPTS": "1"})
    job = submit(api, make_clip(seconds=3.0), analyze="false")
    events = events_of(api, job)
    assert [e[1] for e in events if e[1] in TERMINAL] == ["failed"]
    assert events[-1][2]["code"] == "internal_error"
    assert "could not be fetched or stored" in events[-1][2]["message"]
    assert httpx.get(f"{api}/api/v1/jobs/{job}", timeout=10).json()["status"] == "failed"
