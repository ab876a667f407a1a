"""Live stems in the Celery + S3 deployment (issue 16, must-be-true 3): the worker uploads each
completed segment to the bucket and announces it in the job's Redis event stream; the API node
reads the segments back from the bucket while the job runs, and they equal the final float32
stems exactly.

One API process (API keys on) and one Celery worker, real subprocesses on 127.0.0.1 sharing the
machine's Redis (this module's own key prefix); the bucket is moto's standalone S3 server.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("boto3", reason="the `scaleout` extra (boto3) is not installed")

from conftest import synth_music
from musicsep.scaleout.s3_store import S3Bucket
from server_harness import stream_events

from .conftest import AWS_ENV, isolated_prefix
from .scaleout import ScaleOut, cluster_env, s3_env

API_KEY = "a-test-api-key-of-the-live-cluster"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SEGMENT = 65536
FRAMES = int(4.5 * 44100)


def _next(url: str, headers: dict[str, str]) -> httpx.Response:
    """The segment once ready: 425 says "ask again" (bounded: 8 waits of 30 s)."""
    for _ in range(8):
        reply = httpx.get(url, headers=headers, timeout=60)
        if reply.status_code != 425:
            return reply
    raise AssertionError(f"{url} was not ready within 8 waits")


def test_live_segments_from_the_bucket_equal_the_final_stems(
    tmp_path, tiny_model_repo, redis_url, s3_endpoint, monkeypatch
):
    (tmp_path / "logs").mkdir()
    clip = tmp_path / "song.wav"
    sf.write(str(clip), synth_music(4.5, seed=5).T, 44100)
    with isolated_prefix(redis_url) as prefix:
        env = {
            **cluster_env(tmp_path / "data", tiny_model_repo, redis_url, prefix),
            **s3_env(s3_endpoint),
            "MUSICSEP_API_KEYS": f'["{API_KEY}"]',
        }
        cluster = ScaleOut(env, tmp_path / "logs")
        try:
            api = cluster.api()
            cluster.worker("w1")
            with clip.open("rb") as handle:
                reply = httpx.post(
                    f"{api}/api/v1/jobs",
                    files={"file": ("song.wav", handle)},
                    data={"analyze": "false", "format": "float32", "clip": "none", "stems": "vocals,bass"},
                    headers=AUTH,
                    timeout=60,
                )
            assert reply.status_code == 202, reply.text
            accepted = reply.json()
            job_id = accepted["job_id"]
            token = parse_qs(urlsplit(accepted["events_url"]).query)["token"][0]
            base = f"{api}/api/v1/jobs/{job_id}"

            refused = httpx.get(f"{base}/stems/vocals/live/0?wait=0", timeout=10)
            assert refused.status_code == 401, "no credentials, no token: refused before any lookup"
            live: dict[str, list[np.ndarray]] = {"vocals": [], "bass": []}
            for index in range(10):  # bounded: the track has 4 segments
                replies = {
                    # One stem with the API key, the other with the job's stream token (a page's way).
                    "vocals": _next(f"{base}/stems/vocals/live/{index}?wait=30", AUTH),
                    "bass": _next(f"{base}/stems/bass/live/{index}?wait=30&token={token}", {}),
                }
                if replies["vocals"].status_code == 416:
                    assert replies["bass"].status_code == 416
                    assert replies["vocals"].json()["error"]["code"] == "past_end"
                    break
                for stem, answer in replies.items():
                    assert answer.status_code == 200, answer.text
                    assert answer.headers["x-musicsep-live-level"] == "final"
                    live[stem].append(sf.read(io.BytesIO(answer.content), dtype="float32", always_2d=True)[0])
            status, events = stream_events(f"{base}/events", headers=AUTH)
            assert status == 200 and events[-1][1] == "completed", events[-1]
            view = httpx.get(base, headers=AUTH, timeout=10).json()
            for stem, segments in live.items():
                assert [len(s) for s in segments] == [SEGMENT] * 3 + [FRAMES - 3 * SEGMENT]
                final_url = view["stems"][stem]["url"]  # a presigned bucket URL
                final = sf.read(io.BytesIO(httpx.get(final_url, timeout=30).content), dtype="float32", always_2d=True)[
                    0
                ]
                assert np.array_equal(np.concatenate(segments), final), f"{stem}: live differs from the final stem"
            readies = [
                data["ready_frames"] for _, kind, data in events if kind == "progress" and "ready_frames" in data
            ]
            assert {SEGMENT, 2 * SEGMENT, 3 * SEGMENT, FRAMES} <= set(readies)

            for name, value in AWS_ENV.items():
                monkeypatch.setenv(name, value)
            bucket = S3Bucket(
                env["MUSICSEP_S3_BUCKET"], endpoint_url=s3_endpoint, prefix=env.get("MUSICSEP_S3_PREFIX", "")
            )
            keys = {item["Key"] for item in bucket.client.list_objects_v2(Bucket=bucket.bucket)["Contents"]}
            assert bucket.job_key(job_id, "live", "vocals", "000003") in keys, "each segment is its own object"
            assert not (tmp_path / "data" / "jobs" / job_id / "live").exists(), "nothing live on a local disk"
            deleted = httpx.delete(base, headers=AUTH, timeout=30)
            assert deleted.status_code == 204
            left = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix=bucket.job_key(job_id))
            assert left.get("KeyCount", 0) == 0, "DELETE of the job removed its live segments"
        finally:
            cluster.stop()
