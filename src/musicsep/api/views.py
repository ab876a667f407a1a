"""Job records → response schemas (one place, so every route shows a job the same way)."""

from __future__ import annotations

from typing import Any

from musicsep.api.schemas import FallbackPublic, JobAccepted, JobPublic, StemLink
from musicsep.protocol import SEPARATION_OPTION_NAMES
from musicsep.service.fallbacks import fallback_view, model_ran, requested_model
from musicsep.service.job_service import JobService
from musicsep.service.jobs import Job, JobSpec
from musicsep.service.links import Links


def job_public(service: JobService, job: Job) -> JobPublic:
    result = job.result or {}
    stems = service.stem_links(job) if job.result else None
    return JobPublic(
        id=job.id,
        status=job.status,
        title=job.title,
        source_name=job.filename,
        requested_model=requested_model(job.spec),
        model=model_ran(job),
        fallback=FallbackPublic.model_validate(fallback) if (fallback := fallback_view(job)) else None,
        options=separation_options(job.spec),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        expires_at=job.expires_at,
        position=service.position(job.id),
        attempts=job.attempts,
        stems={name: StemLink(**link) for name, link in stems.items()} if stems is not None else None,
        zip_url=service.zip_link(job),
        mix_url=service.mix_link(job),
        analysis=result.get("analysis"),
        timings=result.get("timings"),
        error=job.error,
    )


def separation_options(spec: JobSpec) -> dict[str, Any]:
    """The options that shape the separation and its result, as the job was given them."""
    return spec.model_dump(mode="json", include=set(SEPARATION_OPTION_NAMES))


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
