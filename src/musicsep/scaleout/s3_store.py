"""Job files in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO) through boto3.

Keys: `<prefix>jobs/<job_id>/input` and `<prefix>jobs/<job_id>/stems/<file>`; the file names come
from the job's stored result, never from a request. Stems are uploaded with boto3's managed
transfer, which switches to a multipart upload above `multipart_threshold` (parts in parallel,
each retried on its own). Downloads are presigned GET URLs: the bucket serves the bytes (Range
requests included), and the API only signs; only the zip of all stems is streamed through the
API node (`open_stem`, read a chunk at a time). SigV4 caps a presigned URL at 7 days, so the expiry
is checked here rather than failing at the first download.

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles,
instance roles); `endpoint_url` points at R2 or MinIO.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

#: SigV4's limit for presigned URLs.
MAX_PRESIGN_S = 7 * 24 * 3600


class S3Bucket:
    """One bucket (and key prefix) holding jobs' inputs and stems: uploads, presigned GETs, streamed reads."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        prefix: str = "",
        region: str | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._s3 = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5}),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(5 * 1024 * 1024, multipart_threshold // 4)
        )

    @property
    def client(self) -> Any:
        """The bucket's boto3 client (its retries and endpoint), for stores that keep other objects in it."""
        return self._s3

    def job_key(self, job_id: str, *parts: str) -> str:
        """The object key of a job's file: every object of a job lies under `job_key(job_id)`."""
        return "/".join([f"{self.prefix}jobs", job_id, *parts])

    def input_key(self, job_id: str) -> str:
        return self.job_key(job_id, "input")

    def stem_key(self, job_id: str, filename: str) -> str:
        return self.job_key(job_id, "stems", filename)

    # --- writing ----------------------------------------------------------------------------
    def put_input(self, job_id: str, path: Path) -> None:
        self._s3.upload_file(str(path), self.bucket, self.input_key(job_id), Config=self._transfer)

    def get_input(self, job_id: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._s3.download_file(self.bucket, self.input_key(job_id), str(dest), Config=self._transfer)

    def put_stem(self, job_id: str, path: Path, media_type: str) -> int:
        """Upload one finished stem (multipart when large); returns its size in bytes."""
        self._s3.upload_file(
            str(path),
            self.bucket,
            self.stem_key(job_id, path.name),
            ExtraArgs={"ContentType": media_type, "ContentDisposition": f'attachment; filename="{path.name}"'},
            Config=self._transfer,
        )
        return path.stat().st_size

    # --- reading ----------------------------------------------------------------------------
    def stem_url(self, job_id: str, filename: str, expires_s: int, disposition: str | None = None) -> str:
        """A presigned GET URL for one stem, valid `expires_s` seconds (at most 7 days); with
        `disposition`, the bucket answers with that Content-Disposition (the download's name)."""
        if not 0 < expires_s <= MAX_PRESIGN_S:
            raise ValueError(f"presigned URLs live 1 s to 7 days, not {expires_s} s")
        params = {"Bucket": self.bucket, "Key": self.stem_key(job_id, filename)}
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        return str(self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    def stem_opener(self, job_id: str, filename: str) -> Callable[[], BinaryIO]:
        """Opens the stem's object later (`open_stem`); its presence is checked now with a HEAD
        (KeyError when it is gone), so that the zip route answers 404 before its 200."""
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self.stem_key(job_id, filename))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(filename) from None
            raise
        return partial(self.open_stem, job_id, filename)

    def get_stem(self, job_id: str, filename: str, dest: Path) -> None:
        """Download one stored file to `dest` (multipart, in parts: never whole in memory);
        KeyError when it is gone."""
        try:
            self._s3.download_file(self.bucket, self.stem_key(job_id, filename), str(dest), Config=self._transfer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(filename) from None
            raise

    def open_stem(self, job_id: str, filename: str) -> BinaryIO:
        """The object's streaming body: read in chunks straight off the HTTP response, never
        loaded whole (botocore's StreamingBody is a file object, closed by `with`)."""
        reply = self._s3.get_object(Bucket=self.bucket, Key=self.stem_key(job_id, filename))
        return reply["Body"]

    # --- removing ---------------------------------------------------------------------------
    def remove_input(self, job_id: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self.input_key(job_id))

    def remove(self, job_id: str) -> None:
        """Every object of the job (input and stems)."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.job_key(job_id) + "/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
