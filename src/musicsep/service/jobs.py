"""The job record and its states: the vocabulary every other service module speaks.

A job is created `queued`, becomes `running` when a slot takes it, and ends in exactly one
terminal state. The JobSpec is what the caller asked for, frozen at admission, so a re-run after a
restart does exactly the same work.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 1, 5, 3


class JobStatus(str, enum.Enum):
    """Where a job stands. Terminal states never change again, except to `expired`."""

    #: Admitted and waiting for a free slot; its `queued` events carry its position.
    QUEUED = "queued"
    #: A worker thread is separating it right now.
    RUNNING = "running"
    #: Finished; stems and analysis can be downloaded until the result TTL passes.
    COMPLETED = "completed"
    #: Stopped by an error; the `failed` event says which code and why.
    FAILED = "failed"
    #: Stopped on request (DELETE, or the streaming client went away).
    CANCELLED = "cancelled"
    #: The result TTL passed and its files were removed; the API answers 410.
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


#: Event types that end a job's log; exactly one of them is ever appended.
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})

Payload = Literal["url", "base64"]


class JobSpec(BaseModel):
    """What to do with the input: model options plus delivery options.

    The input is the uploaded file, or, with `audio_url`, the file at that URL, fetched (with the
    SSRF checks of service/fetch.py) by whoever runs the job, when it runs. `input_sha256` names
    an uploaded input by its bytes, so that a spec says everything a request asked for: two
    requests with one idempotency key are the same request exactly when their specs are equal.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    stems: tuple[str, ...] | None = None
    two_stems: str | None = None
    format: str = "wav16"
    shifts: int = Field(default=0, ge=0, le=20)
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)
    segment: float | None = Field(default=None, gt=0)
    payload: Payload = "url"
    analyze: bool = True
    priority: int = Field(default=PRIORITY_DEFAULT, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    webhook_url: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    audio_url: str | None = Field(default=None, max_length=2000)
    input_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def new_job_id() -> str:
    """Random and unguessable: a job id is part of every download URL."""
    return uuid.uuid4().hex


@dataclass
class Job:
    """One row of the job store."""

    id: str
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    #: Admission order; with the priority it fixes the queue order, also after a restart.
    seq: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    #: How many times a worker took it; a restart re-runs a `running` job while below the cap.
    attempts: int = 0
    request_id: str | None = None
    filename: str | None = None
    #: `completed` payload without URLs (stem names, formats, bytes, analysis, timings).
    result: dict[str, Any] | None = None
    #: `failed` / `cancelled` payload.
    error: dict[str, Any] | None = None
