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
from typing import Any

from pydantic import Field

from musicsep.protocol import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN, TERMINAL_EVENTS, JobParams

# PRIORITY_* and TERMINAL_EVENTS are protocol facts, re-exported for the service modules that read them here.
__all__ = [
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "TERMINAL_EVENTS",
    "Job",
    "JobSpec",
    "JobStatus",
    "new_job_id",
]


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


class JobSpec(JobParams):
    """What to do with the input: the caller's JobParams (musicsep.protocol) with the model
    resolved, plus the input itself.

    The input is the uploaded file, or, with `audio_url`, the file at that URL, fetched (with the
    SSRF checks of service/fetch.py) by whoever runs the job, when it runs. `input_sha256` names
    an uploaded input by its bytes, so that a spec says everything a request asked for: two
    requests with one idempotency key are the same request exactly when their specs are equal.

    Stored as its flat JSON (SQLite, Redis): a spec stored by an earlier release, without the
    fields added since, reads back with their defaults. `model` is a plain string here, not the
    pattern-checked name of the request: a stored spec is read back whatever it holds, and the
    service refuses a name that is not one before any disk is touched (service/validation.py).
    """

    model: str  # resolved: the server default filled in at admission
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
    #: The song's file name as the caller had it: the upload's, or the audio_url's last segment.
    filename: str | None = None
    #: The name lists and downloads show; the caller's `title`, else the file name's stem.
    #: Renamed by PATCH only: the stores never overwrite it with a worker's copy of the job.
    title: str | None = None
    #: The model that runs (recorded with the `started` event); None until then.
    model_used: str | None = None
    #: Why `model_used` is not the requested model (or what recovery happened), in plain words.
    fallback_reason: str | None = None
    #: `completed` payload without URLs (stem names, formats, bytes, analysis, timings).
    result: dict[str, Any] | None = None
    #: `failed` / `cancelled` payload.
    error: dict[str, Any] | None = None
