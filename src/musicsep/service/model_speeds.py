"""How fast each model has run on this server, from its completed jobs.

A person choosing a model wants to know what it costs here, on this machine's device, not on
a benchmark's: the catalog's quality figures say what a model gives, this says what it takes.
The figure is audio seconds separated per wall second of separation (the engine's time: not
the queue, not the model load), summed over the server's most recent completed jobs per model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from musicsep.service.jobs import Job

#: Completed jobs looked at, newest first: recent enough to be this device, enough to average.
RECENT_JOBS = 500


@dataclass(frozen=True)
class ModelSpeed:
    realtime_factor: float
    jobs: int


def model_speeds(jobs: Iterable[Job]) -> dict[str, ModelSpeed]:
    """{model that ran: its speed} over `jobs` (completed ones; others and jobs without timings
    are skipped)."""
    audio: dict[str, float] = {}
    wall: dict[str, float] = {}
    counts: dict[str, int] = {}
    for job in jobs:
        result = job.result or {}
        model, duration = result.get("model"), result.get("duration_s")
        separate = (result.get("timings") or {}).get("separate_s")
        if not model or not duration or not separate or separate <= 0:
            continue
        audio[model] = audio.get(model, 0.0) + float(duration)
        wall[model] = wall.get(model, 0.0) + float(separate)
        counts[model] = counts.get(model, 0) + 1
    return {model: ModelSpeed(round(audio[model] / wall[model], 2), counts[model]) for model in counts}
