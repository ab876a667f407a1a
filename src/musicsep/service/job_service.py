"""The job service: one class over the backends of the deployment, never subclassed per deployment.

`JobService` is what the API's routes talk to: create, read, follow, cancel, download. It holds
no deployment logic of its own; what differs between the embedded mode and scale-out lives in the
backends it is given (service/interfaces.py: `JobStore`, `JobEventLog`, `ArtifactStore`,
`JobQueue`), which `musicsep.composition` chooses once from Settings. The work is split by
responsibility: creation.py (idempotency, admission, the row, the queue), execution.py and
finishing.py (running an attempt, ending a job), cleanup.py (expiry), and the queue itself
(local_queue.py, or scale-out's Celery queue). The API layer turns the typed errors into statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from musicsep.config import Settings
from musicsep.service.artifacts import StemDownload, StemOpener, stems_of
from musicsep.service.cleanup import ExpiryCleaner
from musicsep.service.creation import Created, JobCreation
from musicsep.service.events import Event
from musicsep.service.execution import JobExecution, Pipeline
from musicsep.service.finishing import JobFinisher
from musicsep.service.health import Health
from musicsep.service.interfaces import ArtifactStore, JobEventLog, JobQueue, JobStore
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobSpec, JobStatus
from musicsep.service.metrics import ServiceMetrics
from musicsep.service.mix import MixStream, full_gains
from musicsep.service.model_speeds import RECENT_JOBS, ModelSpeed, model_speeds
from musicsep.service.pipeline import run_pipeline
from musicsep.service.signing import Signer
from musicsep.service.song_names import default_title
from musicsep.service.webhooks import webhook_notifier

__all__ = ["Created", "JobExpired", "JobFinished", "JobNotCompleted", "JobNotFound", "JobService", "QueueFactory"]

#: Builds the deployment's queue from the service's parts (`LocalQueue`, or scale-out's `CeleryQueue`).
QueueFactory = Callable[[JobParts], JobQueue]


class JobNotFound(Exception):
    """No job has this id."""


class JobExpired(Exception):
    """The job existed, but its results passed their TTL and were removed."""


class JobNotCompleted(Exception):
    """What needs a job's stems (a mix) asked of a job that has none (yet)."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"the job is {status.value}: it has no stems to mix until it is completed")
        self.job_id, self.status = job_id, status


class JobFinished(Exception):
    """A cancel asked of a job that has already ended: it stays as it is, files and all."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"the job is {status.value} already: there is nothing to cancel, and nothing was deleted")
        self.job_id, self.status = job_id, status


class JobService:
    def __init__(
        self,
        settings: Settings,
        *,
        loader: Any,
        signer: Signer,
        store: JobStore,
        events: JobEventLog,
        artifacts: ArtifactStore,
        queue: QueueFactory,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.signer = signer
        self.store = store
        self.events = events
        self.artifacts = artifacts
        self.webhooks = webhook_notifier(settings)
        self.metrics = ServiceMetrics(
            store.count_by_status, lambda: self.admission.depth, lambda: self.admission.live_threads
        )
        finisher = JobFinisher(
            settings, store=store, events=events, artifacts=artifacts, metrics=self.metrics, webhooks=self.webhooks
        )
        execution = JobExecution(
            settings, loader=loader, pipeline=pipeline or run_pipeline, artifacts=artifacts, finisher=finisher
        )
        #: What the queue and a Celery worker run and end jobs with.
        self.parts = JobParts(settings, store, events, artifacts, finisher, execution)
        #: The deployment's JobQueue: admission, positions, dispatch (the name the API's checks use).
        self.admission: JobQueue = queue(self.parts)
        self._creation = JobCreation(self.parts, self.admission, self.get)
        self._cleaner = ExpiryCleaner(self.parts)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Expire what is due, let the queue recover what a previous process left, start the cleaner."""
        self._creation.start()
        self.cleanup_expired()
        await self.admission.start()
        self._cleaner.start()

    async def stop(self) -> None:
        self._cleaner.stop()
        await self.admission.stop()
        if self.webhooks is not None:
            await anyio.to_thread.run_sync(self.webhooks.close)
        self.store.close()

    def health(self) -> Health:
        return self.admission.health()

    # --- creating and cancelling ---------------------------------------------------------------
    def create(
        self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None, wait: bool = True
    ) -> Created:
        """See `JobCreation.create`."""
        return self._creation.create(spec, upload, filename=filename, request_id=request_id, wait=wait)

    def cancel(self, job_id: str, reason: str) -> Job:
        """Cancel a queued job at once, a running one within one chunk; finished jobs stay as they are."""
        job = self.get(job_id)
        if job.status.terminal:
            return job
        if self.admission.cancel(job_id, reason):
            current = self.store.get_job(job_id) or job
            self.parts.finisher.finish(current, JobStatus.CANCELLED, {"reason": reason})
            self.artifacts.remove(job_id)
            return current
        return job

    def cancel_unfinished(self, job_id: str, reason: str) -> Job:
        """Cancel a queued or running job (as `cancel`); `JobFinished` when it has ended already.

        Never deletes anything, so a client that cancels while the job completes keeps its stems.
        """
        job = self.get(job_id)
        if job.status.terminal:
            raise JobFinished(job_id, job.status)
        return self.cancel(job_id, reason)

    def delete(self, job_id: str) -> bool:
        """A finished job (completed, failed, cancelled, expired) is removed with its files and
        events: True, and the id is then unknown. A queued or running job is cancelled instead
        (as `cancel`): False, and it stays, ending `cancelled`."""
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if not job.status.terminal:
            self.cancel(job_id, "cancelled by request")
            return False
        self.artifacts.remove(job_id)
        self.events.forget(job_id)
        self.store.delete_job(job_id)
        return True

    def rename(self, job_id: str, title: str | None) -> Job:
        """Give the job a new title; None gives back its default (the file name's stem)."""
        job = self.get(job_id)
        job.title = title or default_title(job.filename)
        if not self.store.rename_job(job_id, job.title):
            raise JobNotFound(job_id)
        return job

    # --- reading ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.status is JobStatus.EXPIRED:
            raise JobExpired(job_id)
        return job

    def position(self, job_id: str) -> int | None:
        return self.admission.position(job_id)

    def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        self.get(job_id)
        return self.events.follow(job_id, after)

    def list(self, statuses: list[JobStatus] | None = None, limit: int = 100) -> list[Job]:
        return self.store.list_jobs(statuses, limit)

    def finished_with(self, job_id: str) -> Event | None:
        """The terminal event when the job has ended, else None."""
        job = self.get(job_id)
        return self.events.last(job_id) if job.status.terminal else None

    def model_speeds(self) -> dict[str, ModelSpeed]:
        """Blocking (reads recent jobs): each model's speed on this server, by the model that ran."""
        return model_speeds(self.store.list_jobs([JobStatus.COMPLETED], RECENT_JOBS))

    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        """Links valid until the result expires, keyed by stem name."""
        return self.artifacts.stem_links(job)

    def zip_link(self, job: Job) -> str | None:
        return self.artifacts.zip_link(job) if job.status is JobStatus.COMPLETED else None

    def mix_link(self, job: Job) -> str | None:
        """The signed link a mix of the stems is POSTed to (the API's own route, every deployment)."""
        if job.status is not JobStatus.COMPLETED:
            return None
        return self.artifacts.mix_link(job)

    def stem_download(self, job_id: str, name: str) -> StemDownload:
        """Where stem `name` of a job is; KeyError when the job has no such stem."""
        return self.artifacts.stem_download(self.get(job_id), name)

    def preview_download(self, job_id: str, name: str, kind: str) -> StemDownload:
        """Where stem `name`'s preview or peaks file is; KeyError when it has none."""
        return self.artifacts.preview_download(self.get(job_id), name, kind)

    def stem_files(self, job_id: str) -> dict[str, StemOpener]:
        """An opener of each stem by file name, for the zip; KeyError when one is gone."""
        return self.artifacts.stem_openers(self.get(job_id))

    def mix(self, job_id: str, gains: dict[str, float], fmt: str) -> tuple[Job, MixStream]:
        """The job's stems mixed with `gains` (0..2; stems not named 1.0), clipped as its stems
        were: the job and a stream to `start()` in a worker thread, then iterate.
        JobNotCompleted, UnknownStem."""
        job = self.get(job_id)
        if job.status is not JobStatus.COMPLETED or not job.result:
            raise JobNotCompleted(job_id, job.status)
        levels = full_gains(list(stems_of(job)), gains)
        stream = MixStream(
            lambda: self.artifacts.local_stems(job),
            levels,
            samplerate=int(job.result["samplerate"]),
            clip=job.spec.clip,
            fmt=fmt,
        )
        return job, stream

    # --- expiry -----------------------------------------------------------------------------
    def cleanup_expired(self, now: float | None = None) -> int:
        return self._cleaner.cleanup_expired(now)
