"""The scale-out `ArtifactStore` of `MUSICSEP_STORAGE=s3`: inputs and stems in an S3 bucket.

Workers may run on other machines than the API, so nothing is shared through a disk: the API
uploads the input and drops its local copy; the worker downloads it into the job's local folder,
runs the pipeline there, uploads the stems before `completed` and drops the folder. Single stems
are presigned bucket URLs (the API's stem route redirects to a fresh one, 307). The zip of all
stems is streamed from the bucket by the API node, each object read a chunk at a time: it is the
one download a browser or script cannot assemble from the presigned links, and it keeps the same
signed `zip_url` working on every deployment, at the cost of its bytes passing once through the
API node. Every object is checked (HEAD) before the zip's first byte, so a missing one is a 404,
not a zip cut short after a 200.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from loguru import logger

from musicsep.protocol import STEM_FILES
from musicsep.scaleout.live_s3 import S3LiveAudio
from musicsep.scaleout.s3_store import S3Bucket
from musicsep.service.artifacts import (
    JobFolders,
    LinkBuilder,
    StemDownload,
    StemOpener,
    preview_file,
    preview_links,
    signed_link,
    stems_of,
)
from musicsep.service.jobs import Job
from musicsep.service.signing import Signer
from musicsep.service.song_names import content_disposition, download_name


class S3ArtifactStore:
    def __init__(
        self, folders: JobFolders, bucket: S3Bucket, *, url_ttl_s: int, signer: Signer, links: LinkBuilder
    ) -> None:
        """`url_ttl_s`: the longest life of a presigned stem URL (MUSICSEP_S3_URL_TTL_S)."""
        self.folders = folders
        self.bucket = bucket
        #: Each live segment its own object, uploaded by the worker as it completes (live_s3.py).
        self.live = S3LiveAudio(bucket)
        self._url_ttl_s = url_ttl_s
        self._signer = signer
        self._links = links

    # --- the job's way through a worker ----------------------------------------------------------
    def accept_input(self, job_id: str, upload: Path) -> None:
        path = self.folders.move_in(job_id, upload)
        try:
            self.bucket.put_input(job_id, path)
        finally:
            self.folders.remove(job_id)

    def fetch_input(self, job_id: str) -> bool:
        path = self.folders.input_path(job_id)
        if path.exists():
            return True
        try:
            self.bucket.get_input(job_id, path)
        except ClientError:
            logger.bind(job_id=job_id).warning("the job's input is not in the bucket")
            path.unlink(missing_ok=True)
            return False
        return True

    def store_stems(self, job_id: str, stems: Mapping[str, Path], media_type: str) -> None:
        for path in stems.values():
            self.bucket.put_stem(job_id, path, media_type)

    def release_local(self, job_id: str) -> None:
        self.folders.remove(job_id)  # the bucket has it all; the worker's disk keeps nothing

    # --- links and downloads ------------------------------------------------------------------
    def _ttl(self, job: Job) -> int:
        """Presigned URLs live until the result expires, at most `url_ttl_s` (and SigV4's 7 days)."""
        left = int((job.expires_at or 0) - time.time())
        return max(1, min(self._url_ttl_s, left))

    def _url(self, job: Job, name: str, info: dict[str, Any], ttl: int) -> str:
        """The stem's presigned URL, its download named after the song as the API's own is."""
        extension = STEM_FILES[info["format"]].extension
        disposition = content_disposition(download_name(job.title, job.id, name, extension))
        return self.bucket.stem_url(job.id, info["file"], ttl, disposition)

    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        ttl = self._ttl(job)
        return {
            name: {
                "url": self._url(job, name, info, ttl),
                "format": info["format"],
                "bytes": info["bytes"],
                **preview_links(self._signer, self._links, job, name, info),
            }
            for name, info in stems_of(job).items()
        }

    def zip_link(self, job: Job) -> str:
        return signed_link(self._signer, self._links, job, "stems.zip")

    def mix_link(self, job: Job) -> str:
        return signed_link(self._signer, self._links, job, "mix")

    def stem_download(self, job: Job, name: str) -> StemDownload:
        info = stems_of(job)[name]
        return StemDownload(info["format"], url=self._url(job, name, info, self._ttl(job)))

    def preview_download(self, job: Job, name: str, kind: str) -> StemDownload:
        """Streamed by the API node (a HEAD checks it first): the page fetches previews from its
        own origin, which a presigned bucket URL is not (a bucket without CORS rules would refuse)."""
        return StemDownload(kind, opener=self.bucket.stem_opener(job.id, preview_file(job, name, kind)))

    def stem_openers(self, job: Job) -> dict[str, StemOpener]:
        return {info["file"]: self.bucket.stem_opener(job.id, info["file"]) for info in stems_of(job).values()}

    @contextmanager
    def local_stems(self, job: Job) -> Iterator[dict[str, Path]]:
        """Downloaded from the bucket into a temporary folder of this node's data dir (a stem is
        too big for memory), removed when the block ends."""
        self.folders.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{job.id}-stems-", dir=self.folders.root) as folder:
            paths = {}
            for name, info in stems_of(job).items():
                paths[name] = Path(folder) / info["file"]
                self.bucket.get_stem(job.id, info["file"], paths[name])
            yield paths

    # --- removing -----------------------------------------------------------------------------
    def clear_stems(self, job_id: str) -> None:
        self.folders.clear_stems(job_id)

    def remove_input(self, job_id: str) -> None:
        self.folders.remove_input(job_id)
        self.bucket.remove_input(job_id)

    def remove(self, job_id: str) -> None:
        self.folders.remove(job_id)
        self.bucket.remove(job_id)
