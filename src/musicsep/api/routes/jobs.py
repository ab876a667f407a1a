"""Jobs: create (202), list, read, rename, follow over SSE, cancel (never deleting), or delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile

from musicsep.api.auth import has_valid_credentials, unauthorized
from musicsep.api.deps import Authenticated, ServiceDep, SettingsDep
from musicsep.api.schemas import (
    ERROR_RESPONSES,
    URL_BODY_OPENAPI,
    JobAccepted,
    JobList,
    JobPublic,
    JobRename,
    SeparationForm,
)
from musicsep.api.stream_slots import caller_of
from musicsep.api.streams import event_stream, parse_last_event_id
from musicsep.api.submission import submit
from musicsep.api.views import job_accepted, job_public
from musicsep.service.jobs import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    dependencies=[Authenticated],
    summary="Upload a song (or give its audio_url) and queue its separation",
    openapi_extra=URL_BODY_OPENAPI,
)
async def create_job(
    request: Request,
    response: Response,
    params: Annotated[SeparationForm, Form()],
    service: ServiceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File(description="The song: WAV, FLAC, MP3, Ogg, M4A…")] = None,
) -> JobAccepted:
    created = await submit(request, params, file, service, settings)
    if created.existing:
        # Same idempotency key as an earlier request: that job, not a new one (Stripe's header name).
        response.headers["Idempotent-Replayed"] = "true"
    return job_accepted(
        service, created.job, request.app.state.links, settings.auth_enabled, settings.stream_token_ttl_s
    )


@router.get("", response_model=JobList, dependencies=[Authenticated], summary="Recent jobs, newest first")
async def list_jobs(
    service: ServiceDep,
    status: Annotated[list[JobStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    return JobList(jobs=[job_public(service, job) for job in service.list(status, limit)])


@router.get("/{job_id}", response_model=JobPublic, dependencies=[Authenticated], summary="One job")
async def get_job(job_id: str, service: ServiceDep) -> JobPublic:
    return job_public(service, service.get(job_id))


@router.patch("/{job_id}", response_model=JobPublic, dependencies=[Authenticated], summary="Rename a job")
async def rename_job(job_id: str, body: JobRename, service: ServiceDep) -> JobPublic:
    """The title lists show and downloads are named after; null or "" gives back the default."""
    return job_public(service, service.rename(job_id, body.title))


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=JobPublic,
    dependencies=[Authenticated],
    summary="Cancel a queued or running job; delete a finished one with its files",
    responses={
        202: {"description": "The job was queued or running: it is cancelled (running: within one chunk)"},
        204: {"description": "The job had finished: it is deleted with its files; the id is then a 404"},
    },
)
async def delete_job(job_id: str, service: ServiceDep) -> Response:
    if service.delete(job_id):
        return Response(status_code=204)
    job = job_public(service, service.get(job_id))
    return Response(job.model_dump_json(), status_code=202, media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobPublic,
    dependencies=[Authenticated],
    summary="Cancel a queued or running job; never deletes",
    responses={
        202: {"description": "The job was queued or running: it is cancelled (running: within one chunk)"},
        409: {"description": "The job has finished already (`job_finished`): nothing is changed or deleted"},
    },
)
async def cancel_job(job_id: str, service: ServiceDep) -> JobPublic:
    """What a client's Ctrl-C should send: racing the job's completion, it cannot delete the stems
    about to be downloaded, as DELETE (which deletes a finished job) would."""
    return job_public(service, service.cancel_unfinished(job_id, "cancelled by request"))


@router.get(
    "/{job_id}/events",
    summary="Follow a job over Server-Sent Events (EventSource-compatible)",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The job's event log, then live events"},
        204: {"description": "Reconnect after the terminal event: nothing more will come"},
        429: {"description": "Too many open streams for this job or caller (Retry-After)"},
    },
)
async def job_events(
    job_id: str,
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
    token: Annotated[str | None, Query(description="Per-job stream token from POST /jobs")] = None,
) -> Response:
    authenticated = settings.auth_enabled and has_valid_credentials(request, settings)
    if settings.auth_enabled and not (authenticated or (token and service.signer.check_stream_token(job_id, token))):
        raise unauthorized()
    after = parse_last_event_id(last_event_id)
    terminal = service.finished_with(job_id)
    if terminal is not None and after >= terminal.id:
        return Response(status_code=204)
    batches = service.follow(job_id, after)
    slot = request.app.state.stream_slots.take(job_id, caller_of(request, authenticated))
    return event_stream(
        batches,
        retry_ms=settings.sse_retry_ms,
        ping_s=settings.sse_ping_s,
        lifetime_s=settings.sse_max_lifetime_s,
        slot=slot,
    )
