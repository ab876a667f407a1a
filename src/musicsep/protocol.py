"""The job protocol: what a caller may ask of a job, and what it hears back while the job runs.

One module, imported by the API (request schemas), the service (JobSpec, the event log), the
Celery worker and the clients, so that a job's options are declared once, with their bounds and
descriptions, and travel form → spec → engine request as one validated model rather than as
field-by-field copies. It imports only the standard library and pydantic: a clients-only install
reads it without FastAPI or torch (an import-linter contract in pyproject.toml holds it to that).

The facts here are the wire's facts (names, bounds, the event vocabulary). Whether a model exists
or has a stem is the server's knowledge and is checked there (service/validation.py).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# --- names and limits -------------------------------------------------------------------------

#: A model name is a name, never a path: 1 to 64 ASCII letters, digits, '_', '.' or '-', not
#: starting with '.' or '-'. The same rule as model/names.py (which keeps its own check, the
#: last one before a disk is touched); published in the OpenAPI document as the fields' pattern.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
MODEL_NAME_MAX = 64
#: ASCII ranges spelled out: `\w` would take any Unicode letter or digit ("ｈｔdemucs", "²").
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MODEL_NAME_RULE = (
    f"model names are 1 to {MODEL_NAME_MAX} letters, digits, '_', '.' or '-', not starting with '.' "
    "(a name, not a path); GET /api/v1/models lists them"
)

OutputFormatName = Literal["wav16", "wav24", "float32", "flac", "mp3", "ogg"]
#: The encodings a stem file can have, in the order the docs list them.
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormatName)


@dataclass(frozen=True)
class StemFile:
    """What a downloaded stem of a format is: its file extension (no dot) and its Content-Type."""

    extension: str
    media_type: str


#: Per output format, the stem file a client downloads (the engine's encoders write these).
STEM_FILES: dict[str, StemFile] = {
    "wav16": StemFile("wav", "audio/wav"),
    "wav24": StemFile("wav", "audio/wav"),
    "float32": StemFile("wav", "audio/wav"),
    "flac": StemFile("flac", "audio/flac"),
    "mp3": StemFile("mp3", "audio/mpeg"),
    "ogg": StemFile("ogg", "audio/ogg"),
}
#: kbps accepted per lossy format (LAME's CBR range; Opus's documented range); others ignore it.
LOSSY_BITRATES: dict[str, tuple[int, int]] = {"mp3": (32, 320), "ogg": (6, 510)}

ClipMode = Literal["rescale", "clamp", "none"]
#: Two-stem complement: Demucs's `add` (sum of the other stems) or `minus` (mix minus the stem).
OtherMethod = Literal["add", "minus"]
EnsembleMethod = Literal["avg_wave", "median_wave", "max_spec", "min_spec"]
ENSEMBLE_METHODS: tuple[str, ...] = get_args(EnsembleMethod)
ENSEMBLE_MIN_MODELS, ENSEMBLE_MAX_MODELS = 2, 4

PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 1, 5, 3
#: A job's title is a song's name as a person writes it: any printable text up to this length.
TITLE_MAX = 200
SHIFTS_MAX = 20
Payload = Literal["url", "base64"]

# --- events -----------------------------------------------------------------------------------

EventType = Literal["queued", "started", "progress", "analysis", "stem", "completed", "failed", "cancelled"]
#: Every event type of a job's log (docs/architecture.md, "Event protocol"), in the order a job
#: can emit them.
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
#: Event types that end a job's log; exactly one of them is ever appended, and nothing after it.
TERMINAL_EVENTS: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

#: The `code` of a `failed` event (and of the error envelope when the job fails before its
#: stream starts, as a 4xx). A client can branch on these; the message is for people.
FAILURE_CODES: frozenset[str] = frozenset(
    {
        "invalid_audio",
        "unsupported_format",
        "audio_too_long",
        "invalid_options",
        "model_unavailable",
        "device_unavailable",
        "storage_full",
        "url_refused",
        "url_fetch_failed",
        "payload_too_large",
        "queue_unavailable",
        "worker_lost",
        "input_lost",
        "internal_error",
    }
)


def is_model_name(name: object) -> bool:
    return isinstance(name, str) and _MODEL_NAME.fullmatch(name) is not None


def _comma_list(value: Any) -> Any:
    """A list as a form field sends it ("vocals,drums", or the field repeated) → list of parts.

    Multipart forms have no lists, so the API takes comma-separated text, and a JSON body may
    send either form; an empty field is the same as none."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        parts = [piece.strip() for part in value for piece in part.split(",")]
        parts = [piece for piece in parts if piece]
        return parts or None
    return value


#: Control, format (bidi overrides) and line/paragraph separator characters; the joiners that
#: emoji sequences and Persian script need stay allowed.
_NOT_IN_TITLES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_JOINERS = frozenset({"\u200c", "\u200d"})


def check_title(value: str) -> str | None:
    """A title stripped of surrounding spaces (None when nothing is left); ValueError when it is
    too long or holds a control character (a newline or escape would break lists, logs and the
    Content-Disposition of downloads named after it)."""
    value = value.strip()
    if len(value) > TITLE_MAX:
        raise ValueError(f"title is {len(value)} characters long; at most {TITLE_MAX} are allowed")
    if any(unicodedata.category(char) in _NOT_IN_TITLES and char not in _JOINERS for char in value):
        raise ValueError("title must not contain control characters (newlines, tabs, escapes)")
    return value or None


class JobParams(BaseModel):
    """Everything a caller chooses about a job: the separation and how its result is delivered.

    The server chooses the rest (device, precision, batch size: Settings). Lists may be sent as
    comma-separated text, as a multipart form must.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="Model name (GET /api/v1/models); the server default if absent.",
        examples=["htdemucs"],
    )
    stems: tuple[str, ...] | None = Field(
        default=None,
        description="Stems to keep (comma-separated in a form); all if absent.",
        examples=[["vocals", "drums"]],
    )
    two_stems: str | None = Field(
        default=None, description="One stem and its complement (`no_<stem>`).", examples=["vocals"]
    )
    other_method: OtherMethod = Field(
        default="add",
        description="How `two_stems` makes the complement: the sum "
        "of the other stems (`add`, Demucs's default) or the mix minus the stem.",
    )
    format: OutputFormatName = Field(default="wav16", description="Encoding of the stem files.")
    clip: ClipMode = Field(
        default="rescale",
        description="Keeping samples in range: scale the whole stem down "
        "(`rescale`), clamp each sample, or leave them (`none`, float32 only keeps them).",
    )
    bitrate: int = Field(
        default=320, ge=6, le=510, description="kbps of lossy formats: mp3 32-320, ogg (Opus) 6-510; others ignore it."
    )
    shifts: int = Field(default=0, ge=0, le=SHIFTS_MAX, description="Random time shifts averaged (0 = repeatable).")
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0, description="Overlap between segments.")
    segment: float | None = Field(default=None, gt=0, description="Segment length in seconds; the model's if absent.")
    ensemble: tuple[str, ...] | None = Field(
        default=None,
        min_length=ENSEMBLE_MIN_MODELS,
        max_length=ENSEMBLE_MAX_MODELS,
        description=f"{ENSEMBLE_MIN_MODELS} to {ENSEMBLE_MAX_MODELS} model names whose stems are combined "
        "(comma-separated in a form); `model` is then not used.",
        examples=[["htdemucs", "htdemucs_ft"]],
    )
    ensemble_method: EnsembleMethod = Field(
        default="avg_wave",
        description="How an ensemble combines its models: "
        "average or median of the waveforms, or per-bin max/min of spectra.",
    )
    ensemble_weights: tuple[float, ...] | None = Field(
        default=None,
        description="avg_wave only: one weight per ensemble model (comma-separated in a form); equal if absent.",
        examples=[[2.0, 1.0]],
    )
    payload: Payload = Field(default="url", description="Stems as signed links, or inline base64.")
    analyze: bool = Field(default=True, description="Add the musical analysis to the result.")
    priority: int = Field(
        default=PRIORITY_DEFAULT,
        ge=PRIORITY_MIN,
        le=PRIORITY_MAX,
        description="1 (lowest) to 5 (most urgent); equal priorities run oldest first.",
    )
    webhook_url: str | None = Field(default=None, max_length=2000, description="Stored with the job.")
    idempotency_key: str | None = Field(
        default=None,
        max_length=200,
        description="A repeated key with the same body (options and input) "
        "returns the first job; with another body, 409.",
    )

    title: str | None = Field(
        default=None,
        description=f"The song's name as lists and downloads show it (up to {TITLE_MAX} characters); "
        "the file name without its extension if absent. PATCH /api/v1/jobs/{id} renames a job.",
        examples=["Song Title"],
    )

    @field_validator("title", mode="before")
    @classmethod
    def _title_text(cls, value: Any) -> Any:
        return check_title(value) if isinstance(value, str) else value

    @field_validator("stems", "ensemble", "ensemble_weights", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("stems")
    @classmethod
    def _stems_are_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not all(part.isidentifier() for part in value):
            raise ValueError("stems must be names such as 'vocals,drums'")
        return value

    @field_validator("ensemble")
    @classmethod
    def _ensemble_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for name in value:
            if not is_model_name(name):
                shown = ascii(name) if len(name) <= 80 else ascii(name[:77]) + "..."
                raise ValueError(f"{MODEL_NAME_RULE}; got {shown}")
        if len(set(value)) != len(value):
            raise ValueError("name each ensemble model once (weights say how much each counts)")
        return value

    @field_validator("ensemble_weights")
    @classmethod
    def _weights_count(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and (not all(math.isfinite(w) and w >= 0 for w in value) or sum(value) <= 0):
            raise ValueError("ensemble_weights must be non-negative numbers, not all zero")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobParams:
        if self.ensemble_weights is not None:
            if self.ensemble is None:
                raise ValueError("ensemble_weights needs an ensemble: give the models as `ensemble`")
            if self.ensemble_method != "avg_wave":
                raise ValueError(f"ensemble_weights apply to avg_wave only, not to {self.ensemble_method}")
            if len(self.ensemble_weights) != len(self.ensemble):
                raise ValueError(
                    f"ensemble_weights has {len(self.ensemble_weights)} weights for "
                    f"{len(self.ensemble)} ensemble models; give one weight per model"
                )
        if self.format in LOSSY_BITRATES:
            low, high = LOSSY_BITRATES[self.format]
            if not low <= self.bitrate <= high:
                raise ValueError(f"bitrate for {self.format} must be between {low} and {high} kbps")
        return self

    def engine_fields(self) -> dict[str, Any]:
        """The keyword arguments of the engine's `SeparationRequest` that the job chooses
        (the server adds device, precision and batch size)."""
        return {
            "model": self.model,
            "stems": list(self.stems) if self.stems else None,
            "two_stems": self.two_stems,
            "other_method": self.other_method,
            "format": self.format,
            "clip": self.clip,
            "bitrate": self.bitrate,
            "shifts": self.shifts,
            "overlap": self.overlap,
            "segment": self.segment,
            "ensemble": list(self.ensemble) if self.ensemble else None,
            "ensemble_method": self.ensemble_method,
            "ensemble_weights": list(self.ensemble_weights) if self.ensemble_weights else None,
        }


#: The option names a client may send with a job (the form fields beside `file`).
OPTION_NAMES: tuple[str, ...] = tuple(JobParams.model_fields)
#: The options that shape a job's separation and result (a job view's `options`): all but its
#: name and the delivery bookkeeping (webhook, idempotency key).
SEPARATION_OPTION_NAMES: tuple[str, ...] = tuple(
    name for name in OPTION_NAMES if name not in ("title", "webhook_url", "idempotency_key")
)
