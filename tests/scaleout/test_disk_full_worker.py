"""A Celery worker whose disk fills while it writes stems fails the job `storage_full`, like the
embedded server (tests/service/test_disk_full.py): the worker runs the same pipeline, whose full
disk is the typed `StorageFull`, and the same failure mapping. The shared data dir of the test
cluster is a real 8 MiB tmpfs the test mounts (skipped where it may not mount)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from small_disk import small_disk  # noqa: F401 (a fixture)

from .scaleout import ScaleOut, cluster_env, harness, s3_env

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def fails_with_storage_full(api: str, clip: Path) -> tuple[str, dict]:
    """Submit `clip` and follow its job to the end, which must be `failed {code: storage_full}`;
    the job's id and the failure's data."""
    with clip.open("rb") as handle:
        reply = httpx.post(
            f"{api}/api/v1/jobs",
            files={"file": ("song.wav", handle, "audio/wav")},
            data={"analyze": "false"},
            timeout=60,
        )
    assert reply.status_code == 202, reply.text
    job = reply.json()["job_id"]
    status, events = harness.stream_events(f"{api}/api/v1/jobs/{job}/events", timeout_s=120)
    assert status == 200
    assert [e[1] for e in events if e[1] in harness.TERMINAL] == ["failed"]
    assert events[-1][2]["code"] == "storage_full", events[-1]
    return job, events[-1][2]


def test_a_worker_whose_disk_fills_while_encoding_fails_the_job_with_storage_full(
    small_disk, tmp_path, tiny_model_repo, redis_url, redis_prefix, make_clip
):
    """Before: `failed {code: internal_error}` from the worker."""
    data_dir = small_disk("8m")
    logs = tmp_path / "logs"
    logs.mkdir()
    cluster = ScaleOut(cluster_env(data_dir, tiny_model_repo, redis_url, redis_prefix), logs)
    try:
        api = cluster.api()
        cluster.worker("w1")
        job, failure = fails_with_storage_full(api, make_clip(seconds=10.0))
        assert "disk space" in failure["message"]
        assert httpx.get(f"{api}/api/v1/jobs/{job}", timeout=10).json()["status"] == "failed"
        leftovers = [p for p in (data_dir / "jobs").rglob("*") if p.is_file()]
        assert leftovers == []
    finally:
        cluster.stop()


def test_a_worker_whose_disk_cannot_hold_the_input_from_the_bucket_fails_with_storage_full(
    small_disk, tmp_path, tiny_model_repo, redis_url, redis_prefix, s3_endpoint, make_clip
):
    """Before: `internal_error` ("the job's files could not be fetched or stored"): the download of
    the input from the bucket happens around the pipeline, where only unexpected errors were caught.
    With MUSICSEP_STORAGE=s3 the worker needs no shared disk: its own data dir is a 1 MiB tmpfs
    and the input is 1.7 MiB."""
    logs = tmp_path / "logs"
    logs.mkdir()
    env = cluster_env(tmp_path / "api-data", tiny_model_repo, redis_url, redis_prefix)
    cluster = ScaleOut({**env, **s3_env(s3_endpoint)}, logs)
    try:
        api = cluster.api()
        worker_disk = small_disk("1m")
        cluster.worker("w1", {"MUSICSEP_DATA_DIR": str(worker_disk)})
        fails_with_storage_full(api, make_clip(seconds=10.0))
        assert [p for p in (worker_disk / "jobs").rglob("*") if p.is_file()] == []  # no half input
    finally:
        cluster.stop()
