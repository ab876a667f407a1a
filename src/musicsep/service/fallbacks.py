"""What a job says when another model ran than the one asked for, in words and in its job view.

The model layer names the fallback (`… — used 'dsp' instead`); what a person then notices first
is a different set of stems (`htdemucs_6s` asked, four stems back instead of six), so the reason
also says which stems the asked model has and which the job gets. The job view carries the
fallback as `{"from", "to", "reason"}`, from what the job recorded when it started (or, for a job
finished by an earlier release, from its result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from musicsep.service.jobs import Job, JobSpec


def requested_model(spec: JobSpec) -> str:
    """What the caller asked to run: the ensemble's models joined by `+` (the name the engine
    gives an ensemble), else the model (the server default filled in)."""
    return "+".join(spec.ensemble) if spec.ensemble else spec.model


def catalog_stems(name: str) -> tuple[str, ...] | None:
    """The stems the catalog lists for `name`, None for a model it does not list."""
    from musicsep.model.catalog import canonical_name, load_catalog

    info = load_catalog().get(canonical_name(name))
    return None if info is None else tuple(info.stems)


def with_stems_note(reason: str | None, requested: str, ran: str, sources: Sequence[str]) -> str | None:
    """`reason`, plus the stems the job loses or gains when `ran` is not `requested`."""
    if reason is None or ran == requested:
        return reason
    asked = catalog_stems(requested)
    if asked is None or set(asked) == set(sources):
        return reason
    return (
        f"{reason}; '{requested}' has {len(asked)} stems ({', '.join(asked)}), "
        f"'{ran}' gives {len(sources)} ({', '.join(sources)})"
    )


def model_ran(job: Job) -> str:
    """The model that ran once the job started, the requested one before."""
    result = job.result or {}
    return job.model_used or result.get("model") or requested_model(job.spec)


def fallback_view(job: Job) -> dict[str, Any] | None:
    """`{"from": asked, "to": ran, "reason": …}` when the job recorded a reason, else None."""
    reason = job.fallback_reason or (job.result or {}).get("fallback_reason")
    if not reason:
        return None
    return {"from": requested_model(job.spec), "to": model_ran(job), "reason": reason}
