"""The pieces of one job service that a `JobQueue` and a Celery worker build on.

Built once by `JobService` from the backends it was given; a queue receives them at
construction, so that it runs and ends jobs with the same store, log, files and finisher as
every other part of the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from musicsep.config import Settings
from musicsep.service.execution import JobExecution
from musicsep.service.finishing import JobFinisher
from musicsep.service.interfaces import ArtifactStore, JobEventLog, JobStore


@dataclass(frozen=True)
class JobParts:
    settings: Settings
    store: JobStore
    events: JobEventLog
    artifacts: ArtifactStore
    finisher: JobFinisher
    execution: JobExecution
