"""A Celery worker process: loads its models once, then runs one delivered job at a time.

One worker per device: the solo pool runs the task in the worker process itself, so the model
stays loaded between jobs and there is never a second job on the same GPU. More throughput means
more worker processes (one per GPU), not more concurrency in one.

The worker builds the same `JobService` as an API node (scaleout/assembly.py) and runs each
delivered job with its parts: `JobExecution` for the attempt, `JobFinisher` for the end. What is
its own is how a job is taken (atomically, so a cancel and a worker cannot both win; a
redelivery counts as a new attempt) and where the cancel flag comes from (Redis, read between
chunks by a watcher thread).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import redis
from celery import Celery
from loguru import logger

from musicsep.config import Settings
from musicsep.model.errors import Cancelled, storage_full
from musicsep.scaleout.celery_app import QUEUE, TASK, make_celery
from musicsep.scaleout.celery_queue import cancel_key
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobStatus

#: How often a running job looks at its cancel flag in Redis (the engine checks between chunks).
_CANCEL_POLL_S = 0.2


class DeliveredJobs:
    """What a worker does with a delivered task, on the service's parts."""

    def __init__(self, parts: JobParts, client: redis.Redis) -> None:
        self._parts = parts
        self._r = client

    def _cancel_key(self, job_id: str) -> str:
        return cancel_key(self._parts.settings.redis_prefix, job_id)

    def run_delivered(self, job_id: str) -> None:
        """Run one delivered task to its end. Blocking; called in the Celery worker."""
        log = logger.bind(job_id=job_id)

        def take(current: Job) -> bool:
            # RUNNING too: a redelivery after the previous worker died mid-job.
            if current.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return False
            current.status, current.started_at = JobStatus.RUNNING, time.time()
            current.attempts += 1
            return True

        job = self._parts.store.update_if(job_id, take)
        if job is None:
            log.info("task skipped: the job is cancelled, finished or gone")
            return
        log = log.bind(request_id=job.request_id)
        try:
            self._run_taken(job, log)
        except Exception as exc:  # storage or Redis failing around the pipeline: never leave it `running`
            if (full := storage_full(exc)) is not None:  # the input's download filled the worker's disk
                self._parts.finisher.fail(job, full, log)
                return
            log.exception("job failed unexpectedly around the separation")
            self._parts.finisher.finish(
                job,
                JobStatus.FAILED,
                {
                    "code": "internal_error",
                    "message": f"the job's files could not be fetched or stored (request id {job.request_id})",
                },
            )
        finally:
            self._parts.artifacts.release_local(job_id)

    def _run_taken(self, job: Job, log: Any) -> None:
        """The attempt of a job this worker has taken: input, pipeline, stems, terminal event."""
        parts, job_id = self._parts, job.id
        if job.attempts > parts.settings.max_attempts:
            parts.finisher.finish(
                job,
                JobStatus.FAILED,
                {
                    "code": "worker_lost",
                    "message": f"the worker running this job stopped {job.attempts - 1} times; it was not run again",
                },
            )
            return
        parts.artifacts.clear_stems(job_id)
        if not parts.execution.has_input(job):
            parts.execution.fail_input_lost(job)
            return
        if job.attempts > 1:
            parts.events.append(
                job_id,
                "queued",
                {
                    "position": 0,
                    "reason": "the worker running this job stopped; it runs again",
                },
            )
        log.info("job started (attempt {})", job.attempts)
        cancel, done = threading.Event(), threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(job_id, cancel, done), daemon=True)
        watcher.start()

        def emit(type_: str, payload: dict[str, Any]) -> None:
            parts.events.append(job_id, type_, payload)

        try:
            outcome: Any = parts.execution.work(job, emit, cancel)
        except Exception as exc:
            outcome = exc
        finally:
            done.set()
            watcher.join(timeout=5)
        reason = self._r.get(self._cancel_key(job_id)) if isinstance(outcome, Cancelled) else None
        if isinstance(reason, bytes):
            reason = reason.decode()
        parts.execution.settle(job, outcome, cancel_reason=reason or "cancelled", log=log)

    def _watch_cancel(self, job_id: str, cancel: threading.Event, done: threading.Event) -> None:
        key = self._cancel_key(job_id)
        while not done.wait(_CANCEL_POLL_S):
            try:
                if self._r.exists(key):
                    cancel.set()
                    return
            except redis.RedisError:
                continue  # Redis away for a moment: keep running, look again


def build_worker(settings: Settings, models: list[str]) -> Celery:
    """The worker's Celery app, its models loaded; SigningKeyRefused before any model is read."""
    from musicsep.model.loading import ModelLoader
    from musicsep.scaleout.assembly import redis_client, scaleout_service
    from musicsep.service.links import Links
    from musicsep.service.signing import Signer, signing_key

    signer = Signer(signing_key(settings.signing_key, settings.data_dir))  # before the models: fails fast
    loader = ModelLoader.from_settings(settings)
    for name in models:
        loader.get(name, settings.device, settings.precision)
        logger.info("model {} loaded", name)
    service = scaleout_service(settings, loader=loader, signer=signer, links=Links(settings.public_url))
    jobs = DeliveredJobs(service.parts, redis_client(settings))
    app = make_celery(settings)

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
    def separate(job_id: str) -> None:
        jobs.run_delivered(job_id)

    return app


def worker_argv(name: str | None = None) -> list[str]:
    return [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--queues={QUEUE}",
        f"--hostname={name or f'musicsep@{socket.gethostname()}'}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]


def run_worker(app: Celery, name: str | None = None) -> Any:
    return app.worker_main(worker_argv(name))
