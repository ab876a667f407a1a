"""Live stems: the finished part of every stem while the job runs, in fixed segments.

`GET /api/v1/jobs/{id}/live` says how far the stems are; `GET …/stems/{stem}/live/{index}` is
one segment as a float32 WAV, waiting up to `wait` seconds when it is not ready yet
(service/live_reader.py; docs/server.md, "Live stems", says why segments).

Auth: with auth on, credentials (API key or Basic) or the job's per-job stream token (`token`,
from POST /jobs, as for its event stream, which a page can only open with it); with auth off the
routes are open, like the job's view and events (nothing hands out signed live links, and the
samples tell no more than the job's events and view do).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as FastApiPath

from musicsep.api.auth import has_valid_credentials, unauthorized
from musicsep.api.deps import ServiceDep
from musicsep.api.errors import ApiError
from musicsep.api.openapi_examples import error_response
from musicsep.api.schemas import ERROR_RESPONSES, ErrorEnvelope, LivePublic
from musicsep.service.job_service import JobService
from musicsep.service.live import wav_header
from musicsep.service.live_reader import (
    DEFAULT_WAIT_S,
    MAX_WAIT_S,
    LiveDisabled,
    LiveEnded,
    LiveNotReady,
    LivePastEnd,
    LiveReader,
    LiveUnknownStem,
)

router = APIRouter(prefix="/api/v1/jobs", tags=["live"], responses=ERROR_RESPONSES)

Token = Annotated[str | None, Query(description="Per-job stream token from POST /jobs (when auth is on)")]
_DISABLED = {
    409: error_response(
        ErrorEnvelope,
        "Live stems are off on this server",
        "live_disabled",
        "live stems are turned off on this server (MUSICSEP_LIVE=false)",
    )
}


def _authorise(request: Request, service: JobService, job_id: str, token: str | None) -> None:
    settings = request.app.state.settings
    if not settings.auth_enabled or has_valid_credentials(request, settings):
        return
    if token and service.signer.check_stream_token(job_id, token):
        return
    raise unauthorized()


def _disabled() -> ApiError:
    return ApiError(409, "live_disabled", "live stems are turned off on this server (MUSICSEP_LIVE=false)")


@router.get(
    "/{job_id}/live",
    response_model=LivePublic,
    summary="How much of each stem is final now",
    responses=_DISABLED,
)
async def live_info(job_id: str, request: Request, service: ServiceDep, token: Token = None) -> LivePublic:
    _authorise(request, service, job_id, token)
    job = service.get(job_id)
    try:
        return LivePublic(**await LiveReader(service.parts).info(job))
    except LiveDisabled:
        raise _disabled() from None


@router.get(
    "/{job_id}/stems/{stem}/live/{index}",
    summary="One segment of a stem's live samples, as a float32 WAV (waits for it)",
    response_class=Response,
    responses={
        200: {
            "content": {"audio/wav": {}},
            "description": "The segment: a float32 WAV at the stem's rate",
        },
        410: error_response(
            ErrorEnvelope,
            "It will never be read: `job_cancelled`, `job_failed` (with the reason), `live_gone`, `job_expired`",
            "job_cancelled",
            "the job was cancelled: cancelled by request",
        ),
        416: error_response(
            ErrorEnvelope,
            "The segment starts at or past the track's end",
            "past_end",
            "the track has 7938000 frames: this segment starts at or after its end",
        ),
        425: error_response(
            ErrorEnvelope,
            "Not ready within `wait`: ask again (Retry-After)",
            "not_ready",
            "segment 12 is not ready yet; ask again",
        ),
        **_DISABLED,
    },
)
async def live_segment(
    job_id: str,
    stem: str,
    index: Annotated[int, FastApiPath(ge=0, le=10_000_000, description="Segment number, from 0")],
    request: Request,
    service: ServiceDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for a segment that is not ready yet")
    ] = DEFAULT_WAIT_S,
    token: Token = None,
) -> Response:
    _authorise(request, service, job_id, token)
    job = service.get(job_id)
    try:
        segment = await LiveReader(service.parts).segment(job, stem, index, wait)
    except LiveDisabled:
        raise _disabled() from None
    except LiveUnknownStem:
        raise ApiError(404, "stem_not_found", "this job has no stem of that name") from None
    except LivePastEnd as exc:
        raise ApiError(416, "past_end", str(exc)) from None
    except LiveNotReady:
        raise ApiError(
            425, "not_ready", f"segment {index} is not ready yet; ask again", headers={"Retry-After": "1"}
        ) from None
    except LiveEnded as exc:
        raise ApiError(410, exc.code, exc.message) from None
    state = segment.state
    return Response(
        wav_header(segment.frames, state.channels, state.samplerate) + segment.data,
        media_type="audio/wav",
        headers={
            "X-Musicsep-Ready-Frames": str(state.ready_frames),
            "X-Musicsep-Live-Level": state.level,
            "Cache-Control": "no-store",
        },
    )
