"""Request and response bodies, named by role (`…Form` in, `…Public` out), with OpenAPI examples."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from musicsep.api.openapi_examples import empty_optional_fields, error_responses
from musicsep.protocol import TITLE_MAX, JobParams, check_title
from musicsep.service.jobs import JobSpec, JobStatus
from musicsep.service.mix import GAIN_MAX, GAIN_MIN, MixFormat


class SeparationForm(JobParams):
    """The options of a separation (musicsep.protocol's JobParams), sent as multipart form fields
    beside `file`; lists as comma-separated text. Fields it does not know are ignored, as the
    form also carries `file`; an empty field is the same as an absent one (a form sends its
    unfilled fields as empty text), so its default applies."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=empty_optional_fields)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != ""}
        return values

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
    preview_url: str | None = Field(
        default=None,
        description="Signed link to a small Ogg Opus preview (96 kbps) of the stem, for playing at once; "
        "null without one (payload=base64 jobs).",
    )
    peaks_url: str | None = Field(
        default=None,
        description='Signed link to the waveform peaks, JSON `{"rate", "samplerate", "duration_s", "peaks"}`: '
        "the largest absolute sample per 1/rate s, full scale 1.0, on one scale for every stem.",
    )


class FallbackPublic(BaseModel):
    """Another model ran than the one asked for (or the run recovered from a device failure)."""

    from_: str = Field(alias="from", description="The model asked for.")
    to: str = Field(description="The model that ran.")
    reason: str = Field(description="Why, in plain words (missing weights, stems the job gets instead).")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class JobPublic(BaseModel):
    """A job as clients see it."""

    id: str
    status: JobStatus
    title: str | None = Field(
        default=None, description="The song's name (PATCH renames it); the file name without its extension by default."
    )
    source_name: str | None = Field(
        default=None, description="The upload's file name, or the audio_url's last path segment, percent-decoded."
    )
    requested_model: str = Field(description="The model asked for (the server default filled in).")
    model: str = Field(description="The model that ran once the job started; the requested one before.")
    fallback: FallbackPublic | None = Field(
        default=None, description="Set when another model ran than the one asked for, with the reason."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The separation options of the job.")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    position: int | None = None
    attempts: int = 0
    stems: dict[str, StemLink] | None = None
    zip_url: str | None = None
    mix_url: str | None = Field(
        default=None, description="Signed link to POST a mix of the stems to (completed jobs): see POST …/mix."
    )
    analysis: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    error: dict[str, Any] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f",
                    "status": "completed",
                    "title": "Song Title",
                    "source_name": "Song Title.mp3",
                    "requested_model": "htdemucs_ft",
                    "model": "dsp",
                    "fallback": {
                        "from": "htdemucs_ft",
                        "to": "dsp",
                        "reason": "the weights of 'htdemucs_ft' are not on this server — used 'dsp' instead",
                    },
                    "options": {"model": "htdemucs_ft", "format": "wav16", "shifts": 0, "overlap": 0.25},
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


class JobRename(BaseModel):
    """Body of PATCH /api/v1/jobs/{id}: the job's new title (null or empty: its default again)."""

    title: str | None = Field(
        description=f"At most {TITLE_MAX} characters, no control characters; surrounding spaces are dropped.",
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Song Title (live)"}]})

    @field_validator("title", mode="before")
    @classmethod
    def _title_text(cls, value: Any) -> Any:
        return check_title(value) if isinstance(value, str) else value


class MixRequest(BaseModel):
    """Body of POST /api/v1/jobs/{id}/mix: a gain per stem (those not named stay at 1.0)."""

    gains: dict[str, Annotated[float, Field(ge=GAIN_MIN, le=GAIN_MAX)]] = Field(
        default_factory=dict, description="Stem name -> gain, 0 (muted) to 2 (+6 dB); stems not named: 1.0."
    )
    format: MixFormat = Field(default="wav16", description="The mix file: 16- or 24-bit WAV.")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"gains": {"vocals": 0.0, "drums": 1.0}, "format": "wav16"}]}
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
    precision: Literal["fp32", "bf16", "fp16", "auto"] | None = Field(
        default=None,
        description="bf16 and fp16 run only where the device computes in them natively (a GPU, a CPU with"
        " AVX-512 bf16 or AMX); elsewhere the model runs fp32, and the response's `precision` says so",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"device": "cuda", "precision": "bf16"}]})


class ModelLoaded(BaseModel):
    name: str
    device: str
    precision: str
    load_s: float
    models_loaded: list[str]


class LivePublic(BaseModel):
    """Where a job's live stems stand (GET /api/v1/jobs/{id}/live; docs/server.md, "Live stems")."""

    samplerate: int = Field(description="The stems' sample rate (0 until the engine starts)", examples=[44100])
    channels: int = Field(description="The stems' channels (0 until the engine starts)", examples=[2])
    segment_frames: int = Field(description="Frames per segment; segment i holds [i*n, (i+1)*n)", examples=[65536])
    ready_frames: int = Field(description="Frames of every stem final and readable now", examples=[262144])
    ready_s: float = Field(description="`ready_frames` in seconds", examples=[5.9443])
    segments_ready: int = Field(description="Complete segments, plus the last short one once all are in")
    total_frames: int | None = Field(description="The track's frames, once the engine knows them")
    done: bool = Field(description="No more segments will come (every frame is in, or the job ended)")
    state: JobStatus
    stems: list[str]
    level: Literal["final", "unscaled", "clamped"] = Field(
        description="`final`: the samples of the finished file (float32 clip none: exactly); `unscaled`: before "
        "clip rescale's division by the stem's peak; `clamped`: clip clamp applied"
    )


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


#: `responses=` for routes: every error answer has the envelope's shape and its own example.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = error_responses(ErrorEnvelope)
