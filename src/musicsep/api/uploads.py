"""Turning an uploaded file into a checked input file, before any job exists.

The body size is capped while it is read (the app's `max_body_size`, counted on the stream
whatever Content-Length says). Here the file is recognised by its first bytes (415 when it is
not audio we decode) and its header probed (422 when it is damaged or claims to be too long),
so that these errors are HTTP statuses rather than `failed` events. The SHA-256 of the bytes is
taken while copying (about 1 s per GB): it is how a job's spec names its upload, which is what
tells an idempotent replay from a new body reusing the key (service/idempotency.py).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from fastapi import UploadFile

from musicsep.service.inputs import read_head, refuse_if_too_long, refuse_unless_audio

#: Multipart boundaries and the option fields around the file, on top of the upload limit.
FORM_OVERHEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    #: Hex SHA-256 of the file's bytes.
    sha256: str


def _store_and_probe(source: UploadFile, folder: Path, max_duration_s: float) -> StoredUpload:
    folder.mkdir(parents=True, exist_ok=True)
    source.file.seek(0)
    head = read_head(source.file)
    refuse_unless_audio(head)  # before copying: a file that is not audio is refused at once
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)
    path = Path(handle.name)
    digest = hashlib.sha256(head)
    try:
        with handle:
            handle.write(head)
            while chunk := source.file.read(1 << 20):
                handle.write(chunk)
                digest.update(chunk)
        refuse_if_too_long(path, max_duration_s)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredUpload(path, digest.hexdigest())


async def store_upload(source: UploadFile, folder: Path, max_duration_s: float) -> StoredUpload:
    """Copy the upload into `folder` (same filesystem as the jobs, so the job takes it by rename)."""
    return await anyio.to_thread.run_sync(_store_and_probe, source, folder, max_duration_s)
