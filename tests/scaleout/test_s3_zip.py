"""The zip of a job whose stems live in an S3 bucket (MUSICSEP_STORAGE=s3).

Regression: the scale-out service did not say where an S3 job's stems are for the zip, so
`GET /api/v1/jobs/{id}/stems.zip` asked with credentials zipped local paths that never existed
on the API node: a 200, then a zip cut short. Now the API node streams the zip from the bucket,
one stem after another, in bounded pieces, and offers it as a signed `zip_url` like the embedded
server does.

One API process (API keys on) and one Celery worker, real subprocesses on 127.0.0.1 sharing the
machine's Redis (db 13, this module's own key prefix); the bucket is on moto's standalone S3
server on 127.0.0.1 (conftest: MinIO cannot be installed here).
"""

from __future__ import annotations

import io
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("boto3", reason="the `scaleout` extra (boto3) is not installed")

from musicsep.scaleout.s3_store import S3Bucket
from musicsep.service.artifacts import iter_zip
from server_harness import stream_events

from .conftest import AWS_ENV, isolated_prefix
from .scaleout import ScaleOut, cluster_env, s3_env

API_KEY = "a-test-api-key-of-this-cluster"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Finished:
    api: str
    job_id: str
    public: dict
    stems: dict[str, bytes]  # file name -> the bytes its presigned link serves
    store: S3Bucket


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_repo, redis_url, s3_endpoint) -> Iterator[Finished]:
    """One completed S3-mode job of a 2 s clip, with every stem as its presigned link serves it."""
    folder = tmp_path_factory.mktemp("s3zip")
    (folder / "logs").mkdir()
    clip = folder / "clip.wav"
    t = np.arange(2 * 44100) / 44100
    sf.write(clip, np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)]).T * 0.3, 44100)
    with isolated_prefix(redis_url) as prefix:
        env = {
            **cluster_env(folder / "data", tiny_model_repo, redis_url, prefix),
            **s3_env(s3_endpoint),
            "MUSICSEP_API_KEYS": f'["{API_KEY}"]',
        }
        cluster = ScaleOut(env, folder / "logs")
        try:
            api = cluster.api()
            cluster.worker("w1")
            with clip.open("rb") as handle:
                reply = httpx.post(
                    f"{api}/api/v1/jobs",
                    files={"file": ("song.wav", handle)},
                    data={"analyze": "false"},
                    headers=AUTH,
                    timeout=60,
                )
            assert reply.status_code == 202, reply.text
            job_id = reply.json()["job_id"]
            status, events = stream_events(f"{api}/api/v1/jobs/{job_id}/events", headers=AUTH)
            assert status == 200 and events[-1][1] == "completed", events[-1]
            public = httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
            stems = {}
            for name, info in public["stems"].items():
                served = httpx.get(info["url"], timeout=30)
                assert served.status_code == 200 and len(served.content) == info["bytes"]
                stems[f"{name}.wav"] = served.content
            yield Finished(api, job_id, public, stems, _store(env["MUSICSEP_S3_BUCKET"], s3_endpoint))
        finally:
            cluster.stop()


def _store(bucket: str, endpoint: str) -> S3Bucket:
    """The test's own handle on the cluster's bucket (credentials passed, not from the env)."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return S3Bucket(bucket, client=client)


def _entries(body: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None  # every entry's CRC matches its bytes
    return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.redis
def test_the_zip_of_an_s3_job_asked_with_credentials_holds_every_stem_whole(finished):
    """The bug: a 200, then the zip of files the API node never had, cut short."""
    reply = httpx.get(f"{finished.api}/api/v1/jobs/{finished.job_id}/stems.zip", headers=AUTH, timeout=60)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/zip"
    assert _entries(reply.content) == finished.stems


@pytest.mark.redis
def test_an_s3_job_offers_a_signed_zip_url_that_needs_no_credentials(finished):
    zip_url = finished.public["zip_url"]
    assert zip_url is not None and "sig=" in zip_url
    reply = httpx.get(finished.api + zip_url, timeout=60)
    assert reply.status_code == 200
    assert _entries(reply.content) == finished.stems
    unsigned = httpx.get(f"{finished.api}/api/v1/jobs/{finished.job_id}/stems.zip", timeout=10)
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "link_invalid"


def test_the_zip_streams_from_the_bucket_in_bounded_pieces(s3_endpoint, monkeypatch, tmp_path):
    """Two 12 MiB stems zip with pieces of at most one read chunk (1 MiB) plus headers, and the
    Python heap never holds more than a few MiB of them at once."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"musicsep-{uuid.uuid4().hex[:8]}"
    store = S3Bucket(bucket, endpoint_url=s3_endpoint, prefix="zip/")
    store._s3.create_bucket(Bucket=bucket)
    job = "ab" * 16
    payloads = {"vocals.wav": np.random.default_rng(0).bytes(12 << 20), "drums.wav": bytes(12 << 20)}
    for filename, data in payloads.items():
        store._s3.put_object(Bucket=bucket, Key=store.stem_key(job, filename), Body=data)
    entries = {filename: partial(store.open_stem, job, filename) for filename in payloads}
    pieces: list[int] = []
    archive = tmp_path / "stems.zip"
    tracemalloc.start()
    try:
        with archive.open("wb") as out:
            for piece in iter_zip(entries):
                pieces.append(len(piece))
                out.write(piece)
                del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert max(pieces) <= (1 << 20) + 4096
    assert peak < 6 << 20, f"{peak / 2**20:.1f} MiB held while zipping 24 MiB"
    assert _entries(archive.read_bytes()) == payloads


@pytest.mark.redis
def test_a_stem_missing_from_the_bucket_is_a_404_before_any_zip_byte(finished):
    """A stem gone from the bucket (a lifecycle rule, a hand) is said at once, not after a 200."""
    store = finished.store
    key = store.stem_key(finished.job_id, "bass.wav")
    kept = store._s3.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    store._s3.delete_object(Bucket=store.bucket, Key=key)
    try:
        reply = httpx.get(f"{finished.api}/api/v1/jobs/{finished.job_id}/stems.zip", headers=AUTH, timeout=30)
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "stem_not_found"
    finally:
        store._s3.put_object(Bucket=store.bucket, Key=key, Body=kept)


@pytest.mark.redis
def test_a_single_stem_of_an_s3_job_redirects_to_its_presigned_url(finished):
    """Was: 404 stem_not_found, though the job listed the stem (the route looked on the API's disk).
    With a signed link or credentials alike, the route now answers 307 to a fresh presigned URL."""
    signed = finished.public["zip_url"].replace("stems.zip", "stems/vocals")  # wrong signature: a 403
    assert httpx.get(finished.api + signed, timeout=10).status_code == 403
    reply = httpx.get(f"{finished.api}/api/v1/jobs/{finished.job_id}/stems/vocals", headers=AUTH, timeout=10)
    assert reply.status_code == 307
    location = reply.headers["location"]
    assert location.startswith("http") and "X-Amz-Signature" in location
    served = httpx.get(location, timeout=30)
    assert served.status_code == 200 and served.content == finished.stems["vocals.wav"]
    assert (
        httpx.get(f"{finished.api}/api/v1/jobs/{finished.job_id}/stems/nope", headers=AUTH, timeout=10).status_code
        == 404
    )
