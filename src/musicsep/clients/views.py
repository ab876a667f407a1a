"""Typed views of the server's JSON answers about jobs and models (GET /api/v1/jobs, /models).

Fields an older server does not send keep their defaults (None); fields a newer one adds are in
`raw`, so a client of this version reads any musicsep server without failing on its shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from musicsep.clients.analysis import TrackAnalysis
from musicsep.clients.common import known_fields

#: Job statuses after which nothing about the job changes (but `expired`, once its files go).
FINISHED = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class Fallback:
    """The server ran another model than the one asked for: `from_` (asked), `to` (ran), why."""

    from_: str | None
    to: str | None
    reason: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Fallback:
        return cls(from_=raw.get("from"), to=raw.get("to"), reason=raw.get("reason"))


@dataclass(frozen=True)
class Job:
    """A job as GET /api/v1/jobs/{id} shows it. `model` is the model that ran once the job
    started (the one asked for before); `stems` maps each stem to `{url, format, bytes}`."""

    id: str
    status: str
    title: str | None = None
    source_name: str | None = None
    model: str | None = None
    requested_model: str | None = None
    fallback: Fallback | None = None
    options: dict[str, Any] | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    position: int | None = None
    attempts: int = 0
    stems: dict[str, dict[str, Any]] | None = None
    zip_url: str | None = None
    analysis: TrackAnalysis | None = None
    timings: dict[str, float] | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Job:
        fields = known_fields(cls, raw)
        fallback, analysis = fields.get("fallback"), fields.get("analysis")
        fields["fallback"] = Fallback.from_json(fallback) if isinstance(fallback, Mapping) else None
        fields["analysis"] = TrackAnalysis.from_json(analysis) if isinstance(analysis, Mapping) else None
        return cls(raw=dict(raw), **fields)


@dataclass(frozen=True)
class ModelInfo:
    """One model of GET /api/v1/models: its stems, whether it is loaded, its engine family
    (`arch`), published quality and, for an ensemble preset, its `members`."""

    name: str
    stems: list[str] = field(default_factory=list)
    description: str = ""
    loaded: bool = False
    arch: str | None = None
    quality: dict[str, Any] | None = None
    members: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelInfo:
        return cls(raw=dict(raw), **known_fields(cls, raw))


@dataclass(frozen=True)
class ModelCatalog:
    """The models a server knows, and the one a job without `model` gets (`default`)."""

    models: list[ModelInfo]
    default: str | None = None

    def __getitem__(self, name: str) -> ModelInfo:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelCatalog:
        return cls([ModelInfo.from_json(entry) for entry in raw.get("models", [])], raw.get("default"))


def job_id(job: str | Job) -> str:
    """A job given by id or as a `Job`."""
    return job.id if isinstance(job, Job) else job
