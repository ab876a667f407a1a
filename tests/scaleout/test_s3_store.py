"""S3 artifact store against an S3 server on 127.0.0.1 (moto's standalone server, see conftest).

moto does not check presigned signatures, so what the tests can show is that the URLs are SigV4
presigned and serve the right bytes, not that a tampered one is refused.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

pytest.importorskip("boto3", reason="the `scaleout` extra (boto3) is not installed")

from musicsep.scaleout.s3_store import MAX_PRESIGN_S, S3Bucket

from .conftest import AWS_ENV

JOB = "cd" * 16


@pytest.fixture
def store(s3_endpoint, monkeypatch) -> S3Bucket:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"musicsep-{uuid.uuid4().hex[:8]}"
    store = S3Bucket(bucket, endpoint_url=s3_endpoint, prefix="test/", multipart_threshold=5 * 1024 * 1024)
    store._s3.create_bucket(Bucket=bucket)
    return store


def test_a_stem_is_downloadable_through_its_presigned_url_with_ranges(store, tmp_path):
    stem = tmp_path / "vocals.wav"
    stem.write_bytes(bytes(range(256)) * 400)
    assert store.put_stem(JOB, stem, "audio/wav") == stem.stat().st_size
    url = store.stem_url(JOB, "vocals.wav", 3600)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    reply = httpx.get(url, timeout=30)
    assert reply.status_code == 200 and reply.content == stem.read_bytes()
    assert reply.headers["content-type"] == "audio/wav"
    assert 'filename="vocals.wav"' in reply.headers["content-disposition"]
    part = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == stem.read_bytes()[10:20]


def test_large_stems_go_up_in_parts(store, tmp_path):
    stem = tmp_path / "other.flac"
    stem.write_bytes(bytes(12 * 1024 * 1024))
    store.put_stem(JOB, stem, "audio/flac")
    head = store._s3.head_object(Bucket=store.bucket, Key=store.stem_key(JOB, "other.flac"))
    assert head["ContentLength"] == stem.stat().st_size
    assert head["ETag"].strip('"').rsplit("-", 1)[1].isdigit(), "not a multipart upload"


def test_presigned_urls_live_at_most_seven_days(store):
    store.stem_url(JOB, "vocals.wav", MAX_PRESIGN_S)
    for bad in (0, MAX_PRESIGN_S + 1):
        with pytest.raises(ValueError, match="7 days"):
            store.stem_url(JOB, "vocals.wav", bad)


def test_inputs_round_trip_and_remove_takes_every_object_of_the_job(store, tmp_path):
    upload = tmp_path / "song.mp3"
    upload.write_bytes(b"ID3" + bytes(1000))
    store.put_input(JOB, upload)
    store.get_input(JOB, tmp_path / "worker" / "input")
    assert (tmp_path / "worker" / "input").read_bytes() == upload.read_bytes()
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"x")
        store.put_stem(JOB, tmp_path / name, "audio/wav")
    other = "ef" * 16
    store.put_input(other, upload)
    store.remove(JOB)
    keys = [o["Key"] for o in store._s3.list_objects_v2(Bucket=store.bucket).get("Contents", [])]
    assert keys == [store.input_key(other)]
