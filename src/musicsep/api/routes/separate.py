"""POST /api/v1/separate: one request that streams the job (or waits for it) and owns it.

When the client goes away before the end, the job is cancelled; the slot is freed only when the
worker thread has ended (the service's runner guarantees that).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from musicsep.api.deps import Authenticated, ServiceDep, SettingsDep
from musicsep.api.errors import FAILED_CODE_STATUS, envelope
from musicsep.api.schemas import ERROR_RESPONSES, URL_BODY_OPENAPI, JobPublic, SeparationForm
from musicsep.api.streams import event_stream
from musicsep.api.submission import submit
from musicsep.api.views import job_public
from musicsep.service.job_service import JobService
from musicsep.service.jobs import JobStatus

router = APIRouter(prefix="/api/v1", tags=["separate"], responses=ERROR_RESPONSES)

DISCONNECTED = "client disconnected"


@router.post(
    "/separate",
    dependencies=[Authenticated],
    summary="Separate and stream progress in the response (or wait for the result)",
    response_model=JobPublic,
    openapi_extra=URL_BODY_OPENAPI,
    responses={
        200: {
            "content": {"text/event-stream": {}, "application/json": {}},
            "description": "`text/event-stream`: the job's events; `application/json`: the finished job",
        }
    },
)
async def separate(
    request: Request,
    params: Annotated[SeparationForm, Form()],
    service: ServiceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File(description="The song")] = None,
    wait: Annotated[bool, Query(description="false: answer 503 at once when no slot is free")] = True,
) -> Response:
    created = await submit(request, params, file, service, settings, wait=wait)
    job_id = created.job.id
    if "text/event-stream" in request.headers.get("accept", ""):
        response: Response = event_stream(
            service.follow(job_id),
            retry_ms=settings.sse_retry_ms,
            ping_s=settings.sse_ping_s,
            on_unfinished=lambda: service.cancel(job_id, DISCONNECTED),
        )
    else:
        response = await _answer_when_done(request, service, job_id)
    # The job's id, so that a client can also follow it over GET …/events or download later.
    response.headers["X-Job-Id"] = job_id
    return response


async def _answer_when_done(request: Request, service: JobService, job_id: str) -> Response:
    async def until_terminal() -> None:
        async for batch in service.follow(job_id):
            if batch[-1].terminal:
                return

    async def until_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue

    done = asyncio.ensure_future(until_terminal())
    gone = asyncio.ensure_future(until_disconnect())
    try:
        await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (done, gone):
            task.cancel()
    if not done.done() or done.cancelled():
        service.cancel(job_id, DISCONNECTED)
        return Response(status_code=499)
    job = service.get(job_id)
    if job.status is JobStatus.COMPLETED:
        return Response(job_public(service, job).model_dump_json(), media_type="application/json")
    error = job.error or {}
    if job.status is JobStatus.CANCELLED:
        return envelope(409, "cancelled", str(error.get("reason", "cancelled")))
    code = str(error.get("code", "internal_error"))
    return envelope(FAILED_CODE_STATUS.get(code, 500), code, str(error.get("message", "the separation failed")))
