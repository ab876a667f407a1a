"""The server's end-to-end scenarios on the scale-out deployment.

The same scenario functions the embedded server's tests run (tests/scenarios.py: stream, resume,
disconnect-cancel, downloads, audio_url), here with MUSICSEP_QUEUE=celery and MUSICSEP_STORAGE=s3,
two API processes and one Celery worker, all real subprocesses on 127.0.0.1 sharing Redis
(127.0.0.1:6379, db 13, this module's own key prefix). The S3 server is moto's standalone server
on 127.0.0.1, because MinIO cannot be installed on this machine; boto3 talks to both alike.
One cluster serves the whole module (its start is most of the cost); each test waits for its jobs
to end, so the next one finds the worker free.

Embedded-only by nature, and not repeated here: the zip of local files and the API's own download
route (signatures, path tricks; in S3 mode the bucket serves the stems and those routes answer
404), the in-process expiry cleaner and the runner's thread records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from http_target import http_target
from scenarios import (
    audio_url_job_equals_upload,
    audio_url_refused,
    disconnect_cancels_post_separate,
    engine_stems,
    idempotency_replays_and_conflicts,
    range_and_disposition,
    resume_at_random_points,
    three_watchers_see_one_log,
)

from .conftest import isolated_prefix
from .scaleout import ScaleOut, cluster_env, s3_env

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@dataclass
class Cluster:
    apis: list[str]
    data_dir: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_model_repo, redis_url, s3_endpoint) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "logs").mkdir()
    with isolated_prefix(redis_url) as prefix:
        env = {**cluster_env(folder / "data", tiny_model_repo, redis_url, prefix), **s3_env(s3_endpoint)}
        scaleout = ScaleOut(env, folder / "logs")
        try:
            apis = [scaleout.api(), scaleout.api()]
            scaleout.worker("w1")
            yield Cluster(apis, folder / "data")
        finally:
            scaleout.stop()


def test_three_watchers_on_two_api_processes_see_one_log_and_presigned_stems_equal_the_engine(
    cluster, make_clip, tiny_model_repo, tmp_path
):
    clip = make_clip(seconds=6.0)
    # The worker runs with OMP_NUM_THREADS=1 (tests/scaleout/scaleout.py): so does the reference.
    expected = engine_stems(clip, tiny_model_repo, tmp_path / "engine", threads=1)
    job_id, events = three_watchers_see_one_log(cluster.apis, clip, expected)
    stems = events[-1][2]["stems"]
    assert all("X-Amz-Signature=" in info["url"] for info in stems.values())
    range_and_disposition(stems["vocals"]["url"], stems["vocals"])
    public = httpx.get(f"{cluster.apis[1]}/api/v1/jobs/{job_id}", timeout=10).json()
    assert public["status"] == "completed"
    # The zip is streamed from the bucket by the API node: tests/scaleout/test_s3_zip.py.
    assert public["zip_url"].startswith(f"/api/v1/jobs/{job_id}/stems.zip?")
    fresh = httpx.get(public["stems"]["bass"]["url"], timeout=30)
    assert fresh.status_code == 200 and len(fresh.content) == stems["bass"]["bytes"]
    assert not list((cluster.data_dir / "jobs").glob("*/stems/*"))  # the worker kept nothing


def test_resume_alternating_between_the_two_api_processes_misses_nothing(cluster, make_clip):
    resume_at_random_points(cluster.apis, make_clip(seconds=30.0))


def test_disconnecting_from_post_separate_cancels_the_job_and_frees_the_worker(cluster, make_clip):
    disconnect_cancels_post_separate(cluster.apis, make_clip(seconds=120.0), make_clip(seconds=2.0))


def test_an_audio_url_is_fetched_by_the_worker_and_non_public_ones_are_refused(cluster, make_clip):
    with http_target() as target:
        audio_url_job_equals_upload(cluster.apis, make_clip(seconds=3.0), target)
        assert [path for path, _ in target.requests] == ["/audio"]
        # The cluster allows loopback (test-only, for the target above); nothing else opens.
        assert audio_url_refused(cluster.apis[1], "http://10.0.0.1/a.wav") == (
            "audio_url refused: 10.0.0.1 is a private address, not a public one"
        )
        metadata = "http://169.254.169.254/latest/meta-data/"
        assert audio_url_refused(cluster.apis[0], f"{target.url}/redirect?to={metadata}").startswith(
            f"audio_url refused: the URL redirected to {metadata}; 169.254.169.254 is the cloud metadata"
        )


def test_an_idempotency_key_replays_on_either_api_process_and_another_body_is_409(cluster, make_clip):
    """Idempotency keys on the scale-out deployment: Redis store, two API processes."""
    idempotency_replays_and_conflicts(cluster.apis, make_clip(seconds=1.0), "cluster-song-1")
