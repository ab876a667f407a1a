"""One error envelope and one exception → status table for the whole HTTP surface.

Every error a client sees is `{"error": {"code", "message", "request_id"}}`. Domain errors come
from the service and model layers as typed exceptions; this table is the only place that knows
which HTTP status each one means (vLLM's `entrypoints` keep the same single table). After an
event stream has started, errors are `failed` events instead (see streams.py).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from musicsep.api.request_id import current_request_id
from musicsep.model.errors import (
    AudioTooLong,
    DeviceUnavailable,
    InvalidAudio,
    InvalidOptions,
    ModelUnavailable,
    MusicsepError,
    UnsupportedFormat,
)
from musicsep.service.admission import NoFreeSlot, QueueFull, ServiceUnavailable
from musicsep.service.fetch import UrlFetchFailed, UrlRefused
from musicsep.service.idempotency import IdempotencyConflict
from musicsep.service.job_service import JobExpired, JobFinished, JobNotCompleted, JobNotFound
from musicsep.service.mix import UnknownStem


class ApiError(Exception):
    """An HTTP-level refusal raised by the api layer itself (auth, bad link, missing stem)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


#: exception type -> (HTTP status, code); codes of MusicsepError subclasses come from the error.
STATUS_TABLE: dict[type[Exception], tuple[int, str]] = {
    JobNotFound: (404, "job_not_found"),
    JobExpired: (410, "job_expired"),
    JobFinished: (409, "job_finished"),
    JobNotCompleted: (409, "job_not_completed"),
    UnknownStem: (422, "unknown_stem"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    QueueFull: (503, "queue_full"),
    ServiceUnavailable: (503, "queue_unavailable"),
    NoFreeSlot: (503, "busy"),
    UnsupportedFormat: (415, UnsupportedFormat.code),
    InvalidAudio: (422, InvalidAudio.code),
    AudioTooLong: (422, AudioTooLong.code),
    InvalidOptions: (422, InvalidOptions.code),
    ModelUnavailable: (422, ModelUnavailable.code),
    DeviceUnavailable: (422, DeviceUnavailable.code),
    # The caller's audio_url: refused (not a public address) or not downloadable (404, too big).
    UrlRefused: (422, UrlRefused.code),
    UrlFetchFailed: (422, UrlFetchFailed.code),
}

_MESSAGES: dict[type[Exception], str] = {
    JobNotFound: "no job has this id",
    JobExpired: "this job's results passed their retention time and were removed",
}

#: Status of a JSON /separate answer whose job failed, by the `failed` event's code.
FAILED_CODE_STATUS = {code: status for status, code in STATUS_TABLE.values()} | {"payload_too_large": 413}


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, job_id: str | None = None
) -> JSONResponse:
    """`job_id`: the job an error is about, for the errors that name one (idempotency_conflict)."""
    error: dict[str, str | None] = {"code": code, "message": message, "request_id": current_request_id()}
    if job_id is not None:
        error["job_id"] = job_id
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def response_for(exc: Exception) -> JSONResponse:
    """The envelope for a known exception; unknown ones are the caller's business (500)."""
    if isinstance(exc, ApiError):
        return envelope(exc.status, exc.code, exc.message, exc.headers)
    for kind in type(exc).__mro__:
        if kind in STATUS_TABLE:
            status, code = STATUS_TABLE[kind]
            message = exc.message if isinstance(exc, MusicsepError) else _MESSAGES.get(kind, str(exc))
            headers = None
            if isinstance(exc, (QueueFull, NoFreeSlot, ServiceUnavailable)):
                headers = {"Retry-After": str(exc.retry_after_s)}
            job_id = exc.job_id if isinstance(exc, IdempotencyConflict) else None
            return envelope(status, code, message, headers, job_id)
    raise LookupError(type(exc).__name__)


def _http_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _describe_validation(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers: table errors, HTTP errors, validation errors."""

    async def on_known(_: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else _http_code(exc.status_code)
        return envelope(exc.status_code, _http_code(exc.status_code), message, exc.headers)

    async def on_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return envelope(422, "invalid_request", _describe_validation(list(exc.errors())))

    for kind in (ApiError, *STATUS_TABLE):
        app.add_exception_handler(kind, on_known)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
