"""Stem downloads: signed links (or credentials), Range requests, Content-Disposition, a streamed
zip, each stem's preview and peaks, and a mix of the stems with a gain each.

Files are named after the song (`Song Title - vocals.wav`, `Song Title - stems.zip`: the job's
title at the time of the download), in UTF-8 with an ASCII fallback (service/song_names.py).

The signature (or the credentials) is checked before the job is looked up: a caller without
either gets the same 403 whether the id exists, has finished, or has a stem of that name. A file
is found from the job's own result by an allow-listed stem name, never from a path in the
request; anything else (`..`, encoded slashes, unknown names) is a 404 to an authorised caller.
A stem kept in a bucket (MUSICSEP_STORAGE=s3) answers 307 to a fresh presigned URL of it. A
stem's preview and peaks are always served from here (streamed from the bucket with S3 storage),
so that a page can fetch them from its own origin.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import RedirectResponse, StreamingResponse

from musicsep.api.auth import has_valid_credentials
from musicsep.api.deps import ServiceDep
from musicsep.api.errors import ApiError
from musicsep.api.ranged_file import EnvelopedFileResponse
from musicsep.api.schemas import ERROR_RESPONSES, ErrorEnvelope, MixRequest
from musicsep.protocol import STEM_FILES
from musicsep.service.artifacts import iter_file, iter_zip
from musicsep.service.job_service import JobService
from musicsep.service.jobs import JobStatus
from musicsep.service.mix import MIX_EXTENSION, MIX_MEDIA_TYPE
from musicsep.service.previews import MEDIA_TYPES as PREVIEW_MEDIA_TYPES
from musicsep.service.song_names import content_disposition, download_name

router = APIRouter(prefix="/api/v1/jobs", tags=["downloads"], responses=ERROR_RESPONSES)

# Text, not int: the signer accepts ASCII digits only and a malformed link is a 403 like any
# other bad link (pydantic's int would also take '+5', ' 5' or '5.0': other spellings of one link).
Expires = Annotated[
    str | None, Query(description="From the signed link: its expiry, Unix seconds", examples=["1767312030"])
]
Signature = Annotated[str | None, Query(description="From the signed link")]
RANGE_RESPONSES: dict[int | str, dict] = {
    416: {"model": ErrorEnvelope, "description": "The Range starts past the end (see Content-Range)"}
}


def _authorise(
    request: Request, service: JobService, job_id: str, name: str, expires: str | None, sig: str | None
) -> None:
    """Before any lookup, so that the answer says nothing about the job."""
    if expires is not None and sig is not None and service.signer.verify("stem", job_id, name, expires, sig):
        return
    settings = request.app.state.settings
    if settings.auth_enabled and has_valid_credentials(request, settings):
        return
    raise ApiError(
        403,
        "link_invalid",
        "this download link is missing its signature, wrong or expired; GET the job for fresh links",
    )


def _completed(service: JobService, job_id: str):
    job = service.get(job_id)
    if job.status is not JobStatus.COMPLETED:
        raise ApiError(404, "no_result", f"the job is {job.status.value}: it has no stems")
    return job


@router.get("/{job_id}/stems.zip", summary="All stems of a job as one zip, streamed")
async def download_zip(
    job_id: str, request: Request, service: ServiceDep, expires: Expires = None, sig: Signature = None
) -> StreamingResponse:
    """Local files or S3 objects alike, one chunk in memory at a time. Every stem is checked
    before the 200: once the zip has started, a missing one could only cut it short."""
    _authorise(request, service, job_id, "stems.zip", expires, sig)
    job = _completed(service, job_id)
    try:
        files = await anyio.to_thread.run_sync(service.stem_files, job_id)  # S3: one HEAD per stem
    except KeyError:
        raise ApiError(404, "stem_not_found", "a stem of this job is no longer in storage") from None
    return StreamingResponse(
        iter_zip(files),
        media_type="application/zip",
        headers={"Content-Disposition": content_disposition(download_name(job.title, job.id, "stems", "zip"))},
    )


@router.get(
    "/{job_id}/stems/{stem}/{kind}",
    summary="A stem's compressed preview (Ogg Opus) or its waveform peaks (JSON)",
    responses=RANGE_RESPONSES,
)
async def download_preview(
    job_id: str,
    stem: str,
    kind: Annotated[str, FastApiPath(description="`preview` (Ogg Opus) or `peaks` (JSON)")],
    request: Request,
    service: ServiceDep,
    expires: Expires = None,
    sig: Signature = None,
) -> Response:
    """Served by the API itself with either storage, so a page fetches them from its own origin."""
    _authorise(request, service, job_id, f"{stem}/{kind}", expires, sig)
    _completed(service, job_id)
    try:
        # Any other `kind` is a KeyError too: text after the stem is never a path.
        where = await anyio.to_thread.run_sync(service.preview_download, job_id, stem, kind)  # S3: a HEAD
    except KeyError:
        raise ApiError(404, "preview_not_found", f"this job has no {kind} of a stem of that name") from None
    media_type = PREVIEW_MEDIA_TYPES[where.format]
    if where.path is not None:
        return EnvelopedFileResponse(where.path, media_type=media_type)
    assert where.opener is not None
    return StreamingResponse(iter_file(where.opener), media_type=media_type)


@router.get(
    "/{job_id}/stems/{stem}",
    summary="One stem file (supports Range requests)",
    responses={**RANGE_RESPONSES, 307: {"description": "The stem is in a bucket: its presigned URL"}},
)
async def download_stem(
    job_id: str, stem: str, request: Request, service: ServiceDep, expires: Expires = None, sig: Signature = None
) -> Response:
    _authorise(request, service, job_id, stem, expires, sig)
    job = _completed(service, job_id)
    try:
        where = service.stem_download(job_id, stem)
    except KeyError:
        raise ApiError(404, "stem_not_found", "this job has no stem of that name") from None
    if where.url is not None:  # S3: the bucket serves the bytes (Range requests included)
        return RedirectResponse(where.url, status_code=307)
    assert where.path is not None
    stem_file = STEM_FILES[where.format]
    name = download_name(job.title, job.id, stem, stem_file.extension)
    return EnvelopedFileResponse(
        where.path, media_type=stem_file.media_type, headers={"Content-Disposition": content_disposition(name)}
    )


@router.post(
    "/{job_id}/mix",
    summary="The stems mixed with a gain each, as one WAV file, streamed",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "sum(gain * stem), clipped as the job's stems"},
        409: {"model": ErrorEnvelope, "description": "The job is not completed (`job_not_completed`)"},
        422: {"model": ErrorEnvelope, "description": "A gain out of 0..2, or a stem the job lacks (`unknown_stem`)"},
    },
)
async def download_mix(
    job_id: str,
    body: MixRequest,
    request: Request,
    service: ServiceDep,
    expires: Expires = None,
    sig: Signature = None,
) -> Response:
    """POST to the job's signed `mix_url` (or with credentials). Read block by block (twice: the
    peak and length first), so memory does not grow with the song."""
    _authorise(request, service, job_id, "mix", expires, sig)
    job, stream = service.mix(job_id, body.gains, body.format)
    try:
        await anyio.to_thread.run_sync(stream.start)  # the measuring pass; S3: the stems downloaded
    except KeyError:
        raise ApiError(404, "stem_not_found", "a stem of this job is no longer in storage") from None
    return StreamingResponse(
        iter(stream),
        media_type=MIX_MEDIA_TYPE,
        headers={
            "Content-Disposition": content_disposition(download_name(job.title, job.id, "mix", MIX_EXTENSION)),
            "Content-Length": str(stream.length),
        },
    )
