"""Live segments in the bucket (MUSICSEP_STORAGE=s3): the worker uploads each completed segment
as its own object, the API node reads it back for a reader.

Keys: `<prefix>jobs/<id>/live/<stem>/<index:06d>` (interleaved float32, one segment each) and
`<prefix>jobs/<id>/live/state.json` (service/live.LiveState), rewritten after the segments it
counts are uploaded; an object cannot grow, so fixed segments are what a bucket can hold while
a job runs. A job's end is marked by `<prefix>live-ended/<unix seconds:012d>-<id>`: keys list in
order, so the grace sweep reads the markers that are due and stops, never listing every job.

How far behind the frontier a reader is: a segment becomes readable once it is complete (up to
one segment, about 1.49 s of audio, after its first frame left the engine) plus the time its
upload takes (one PUT per stem and one for the state); the `progress` event that announces it is
appended after the uploads, so a reader following the job's events never asks too early.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from musicsep.scaleout.s3_store import S3Bucket
from musicsep.service.live import LiveState, check_stem

_MISSING = ("404", "NoSuchKey", "NotFound")


class S3LiveAudio:
    def __init__(self, bucket: S3Bucket) -> None:
        self.bucket = bucket
        self._s3: Any = bucket.client  # the bucket's own client: retries and endpoint as configured there

    def _key(self, job_id: str, *parts: str) -> str:
        return self.bucket.job_key(job_id, "live", *parts)

    def _marker_prefix(self) -> str:
        return f"{self.bucket.prefix}live-ended/"

    def put_segment(self, job_id: str, stem: str, index: int, data: bytes) -> None:
        self._s3.put_object(
            Bucket=self.bucket.bucket, Key=self._key(job_id, check_stem(stem), f"{index:06d}"), Body=data
        )

    def put_state(self, job_id: str, state: LiveState) -> None:
        self._s3.put_object(
            Bucket=self.bucket.bucket,
            Key=self._key(job_id, "state.json"),
            Body=state.to_json(),
            ContentType="application/json",
        )

    def _get(self, key: str) -> bytes | None:
        try:
            reply = self._s3.get_object(Bucket=self.bucket.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        with reply["Body"] as body:
            return bytes(body.read())

    def state(self, job_id: str) -> LiveState | None:
        data = self._get(self._key(job_id, "state.json"))
        return LiveState.from_json(data) if data is not None else None

    def segment(self, job_id: str, state: LiveState, stem: str, index: int) -> bytes:
        data = self._get(self._key(job_id, check_stem(stem), f"{index:06d}"))
        if data is None or len(data) != state.frames_of(index) * state.channels * 4:
            raise KeyError(stem)
        return data

    def ended(self, job_id: str, at: float) -> None:
        state = self.state(job_id)
        if state is None or state.ended_at is not None:
            return
        state.ended_at = at
        self.put_state(job_id, state)
        marker = f"{self._marker_prefix()}{int(at):012d}-{job_id}"
        self._s3.put_object(Bucket=self.bucket.bucket, Key=marker, Body=b"")

    def sweep(self, ended_before: float) -> int:
        removed = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        prefix = self._marker_prefix()
        for page in paginator.paginate(Bucket=self.bucket.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                stamp, _, job_id = item["Key"][len(prefix) :].partition("-")
                if not stamp.isdigit() or int(stamp) >= ended_before:
                    return removed
                self.remove(job_id)
                self._s3.delete_object(Bucket=self.bucket.bucket, Key=item["Key"])
                removed += 1
        return removed

    def remove(self, job_id: str) -> None:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket.bucket, Prefix=self._key(job_id) + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket.bucket, Delete={"Objects": keys, "Quiet": True})
