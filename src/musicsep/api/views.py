"""Job records → response schemas (one place, so every route shows a job the same way)."""

from __future__ import annotations

from musicsep.api.schemas import JobAccepted, JobPublic, StemLink
from musicsep.service.job_service import JobService
from musicsep.service.jobs import Job
from musicsep.service.links import Links


def job_public(service: JobService, job: Job) -> JobPublic:
    result = job.result or {}
    stems = service.stem_links(job) if job.result else None
    return JobPublic(
        id=job.id,
        status=job.status,
        model=job.spec.model,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        expires_at=job.expires_at,
        position=service.position(job.id),
        attempts=job.attempts,
        stems={name: StemLink(**link) for name, link in stems.items()} if stems is not None else None,
        zip_url=service.zip_link(job),
        analysis=result.get("analysis"),
        timings=result.get("timings"),
        error=job.error,
    )


def job_accepted(service: JobService, job: Job, links: Links, auth_enabled: bool, token_ttl_s: float) -> JobAccepted:
    status_url = links.absolute(f"/api/v1/jobs/{job.id}")
    events_url = f"{status_url}/events"
    if auth_enabled:
        events_url += f"?token={service.signer.stream_token(job.id, token_ttl_s)}"
    return JobAccepted(
        job_id=job.id,
        status=job.status,
        # A job that is not in the queue any more took a slot at once: position 0.
        position=None if job.status.terminal else service.position(job.id) or 0,
        status_url=status_url,
        events_url=events_url,
    )
