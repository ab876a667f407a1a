"""Request and response bodies, named by role (`…Form` in, `…Public` out), with OpenAPI examples."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musicsep.protocol import JobParams
from musicsep.service.jobs import JobSpec, JobStatus


class SeparationForm(JobParams):
    """The options of a separation (musicsep.protocol's JobParams), sent as multipart form fields
    beside `file`; lists as comma-separated text. Fields it does not know are ignored, as the
    form also carries `file`."""

    model_config = ConfigDict(extra="ignore")

    def to_spec(self, default_model: str) -> JobSpec:
        return JobSpec.model_validate({**self.model_dump(), "model": self.model or default_model})


class SeparationUrl(SeparationForm):
    """A JSON body instead of an upload: the same options plus the URL of the song.

    Only the URL's shape is checked here; whoever runs the job downloads it (public addresses
    only, docs/server.md), and a refused or failed download is the job's `failed` event.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"audio_url": "https://example.com/song.mp3", "model": "htdemucs", "stems": ["vocals", "drums"]}
            ]
        },
    )

    audio_url: str = Field(max_length=2000, description="An http(s) URL of the song, fetched by the server.")

    @field_validator("audio_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("audio_url must be an http:// or https:// URL with a host name")
        return value


#: `openapi_extra` of the routes that take either a multipart upload or a JSON `audio_url` body.
URL_BODY_OPENAPI: dict[str, Any] = {
    "requestBody": {"content": {"application/json": {"schema": SeparationUrl.model_json_schema()}}}
}


class JobAccepted(BaseModel):
    """Answer of POST /api/v1/jobs: where to watch the job."""

    job_id: str
    status: JobStatus
    position: int | None = Field(description="Place in the queue (1 = next); 0 when it started at once.")
    status_url: str
    events_url: str = Field(description="EventSource URL; carries `?token=` when auth is on.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f",
                    "status": "queued",
                    "position": 1,
                    "status_url": "/api/v1/jobs/3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f",
                    "events_url": "/api/v1/jobs/3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f/events",
                }
            ]
        }
    )


class StemLink(BaseModel):
    url: str
    format: str
    bytes: int


class JobPublic(BaseModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    model: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    position: int | None = None
    attempts: int = 0
    stems: dict[str, StemLink] | None = None
    zip_url: str | None = None
    analysis: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    error: dict[str, Any] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f",
                    "status": "completed",
                    "model": "htdemucs",
                    "created_at": 1767225600.0,
                    "started_at": 1767225600.5,
                    "finished_at": 1767225630.2,
                    "expires_at": 1767312030.2,
                    "attempts": 1,
                    "stems": {
                        "vocals": {
                            "url": "/api/v1/jobs/3f2b…/stems/vocals?expires=1767312030&sig=…",
                            "format": "wav16",
                            "bytes": 5292044,
                        }
                    },
                    "zip_url": "/api/v1/jobs/3f2b…/stems.zip?expires=1767312030&sig=…",
                    "analysis": {"duration_s": 30.0},
                    "timings": {"total_s": 29.7},
                }
            ]
        }
    )


class JobList(BaseModel):
    jobs: list[JobPublic]


class HealthPublic(BaseModel):
    """200 with `ok`; 503 with `unavailable` while a dependency this node needs is down."""

    status: Literal["ok", "unavailable"]
    device: str
    models_loaded: list[str]
    queue_depth: int | None = Field(description="Jobs waiting; null when the job store cannot be reached.")
    running: int | None
    slots: int
    dependencies: dict[str, bool] = Field(
        default_factory=dict, description="Scale-out: each outside dependency and whether it answered (redis)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "unavailable",
                    "device": "cpu",
                    "models_loaded": ["htdemucs"],
                    "queue_depth": None,
                    "running": None,
                    "slots": 1,
                    "dependencies": {"redis": False},
                }
            ]
        }
    )


class ModelPublic(BaseModel):
    name: str
    stems: list[str]
    description: str
    loaded: bool


class ModelList(BaseModel):
    models: list[ModelPublic]
    default: str


class ModelLoadForm(BaseModel):
    """Body of POST /api/v1/models/{name}/load (seed 002's /initialize)."""

    device: Literal["auto", "cpu", "cuda", "mps"] | None = None
    precision: Literal["fp32", "bf16", "fp16", "auto"] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"device": "cuda", "precision": "bf16"}]})


class ModelLoaded(BaseModel):
    name: str
    device: str
    precision: str
    load_s: float
    models_loaded: list[str]


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str | None
    job_id: str | None = Field(default=None, description="`idempotency_conflict` only: the key's first job.")


class ErrorEnvelope(BaseModel):
    error: ErrorBody

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": {"code": "job_not_found", "message": "no job has this id", "request_id": "b1946ac92492d234"}}
            ]
        }
    )


#: `responses=` for routes: every error answer has the envelope's shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in {
        400: "Malformed request: a body or header that cannot be parsed",
        401: "Missing or wrong credentials",
        404: "Unknown job, stem or model",
        410: "The job's results expired",
        413: "Upload too large",
        409: "Conflict: an idempotency_key reused with another body (`job_id` names its job), "
        "or a POST /separate whose job was cancelled",
        415: "Not an audio format the server decodes",
        422: "Invalid options or audio",
        429: "Too many concurrent streams or requests from this caller (see Retry-After)",
        503: "Busy: queue full or no free slot (see Retry-After)",
    }.items()
}
