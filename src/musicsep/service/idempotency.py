"""Idempotency keys: a repeated key with the same body is the first job; with another body, a conflict.

A client that did not see the answer to its POST (a timeout, a dropped connection) sends it again
with the same `idempotency_key` and must get the job it already created, not a second one, even
while the queue is full (the first job already holds its place). The same key with a *different*
body is a client bug that silently returning the first job would hide, so it is refused (409,
as Stripe and the IETF idempotency-key draft do) with the first job's id.

"The same body" is the whole JobSpec: every option, and the input (the audio_url, or the SHA-256
of the uploaded bytes in `input_sha256`). Comparing specs needs no extra column in either store:
the spec is stored with the job already, in SQLite and in Redis alike.
"""

from __future__ import annotations

from musicsep.service.interfaces import JobStore
from musicsep.service.jobs import Job, JobSpec


class IdempotencyConflict(Exception):
    """The key belongs to a job created from a different body; `job_id` names that job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"this idempotency_key was used for job {job_id} with a different body "
            "(options or input); send a new key for a new job"
        )
        self.job_id = job_id


def has_first_job(store: JobStore, spec: JobSpec) -> bool:
    """Whether an earlier request with this spec's key created a job (checked before admission:
    a replay needs no free place in the queue)."""
    return spec.idempotency_key is not None and store.find_by_idempotency_key(spec.idempotency_key) is not None


def replay_of(first: Job, spec: JobSpec) -> Job:
    """`first`, when `spec` asks for exactly what it asked for; IdempotencyConflict otherwise."""
    if spec != first.spec:
        raise IdempotencyConflict(first.id)
    return first
