"""The scale-out `JobQueue`: jobs go to Celery over Redis and run in worker processes.

The API process runs no job: admission is "is Redis there?" (Redis unreachable answers 503
before anything is promised: `BrokerUnavailable`), `enqueue` sends the Celery task, positions
are not tracked (Celery's priority lists are the queue), and a cancel either ends a still-queued
job here, atomically against a worker taking it (`JobStore.update_if`), or raises the job's
cancel flag in Redis, which the worker running it reads between chunks (scaleout/worker.py).
A dead worker's job is redelivered by Celery, so `start` has nothing to recover.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis
from celery import Celery
from kombu.exceptions import OperationalError
from loguru import logger

from musicsep.scaleout.celery_app import TASK, celery_priority
from musicsep.service.admission import ServiceUnavailable
from musicsep.service.health import Health
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobStatus

_RETRY_AFTER_S = 5


class BrokerUnavailable(ServiceUnavailable):
    """Redis cannot be reached: nothing was queued, the client should retry (503 queue_unavailable)."""

    def __init__(self) -> None:
        super().__init__("the job queue cannot be reached right now; nothing was queued, retry shortly", _RETRY_AFTER_S)


def cancel_key(prefix: str, job_id: str) -> str:
    """The Redis key of a job's cancel flag (its value: the reason)."""
    return f"{prefix}cancel:{job_id}"


class CeleryQueue:
    def __init__(self, parts: JobParts, *, client: redis.Redis, celery: Celery) -> None:
        self._parts = parts
        self._r = client
        self._celery = celery
        self.slots = parts.settings.max_concurrent

    @property
    def depth(self) -> int:
        return self._parts.store.count_by_status().get(JobStatus.QUEUED.value, 0)

    @property
    def running(self) -> frozenset[str]:
        return frozenset(job.id for job in self._parts.store.list_jobs([JobStatus.RUNNING], limit=10_000))

    @property
    def live_threads(self) -> int:
        return 0  # jobs run in the workers' processes

    def position(self, job_id: str) -> int | None:
        return None

    def health(self) -> Health:
        """Unavailable while Redis cannot be reached: no job can be taken, listed or followed."""
        try:
            self._r.ping()
            return Health(True, self.slots, self.depth, len(self.running), {"redis": True})
        except redis.RedisError:
            return Health(False, self.slots, None, None, {"redis": False})

    def check(self, *, wait: bool = True) -> None:
        try:
            self._r.ping()
        except redis.RedisError:
            raise BrokerUnavailable() from None

    def hold_slot(self) -> AbstractAsyncContextManager[None]:
        return self._reachable()

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        """No run slots in an API process: a model load only needs the queue to be there."""
        self.check()
        yield

    def enqueue(self, job: Job) -> None:
        try:
            self._parts.events.append(job.id, "queued", {"position": self.depth})
            self._celery.send_task(TASK, args=[job.id], priority=celery_priority(job.spec.priority))
        except (OperationalError, redis.RedisError, OSError):
            raise BrokerUnavailable() from None

    def cancel(self, job_id: str, reason: str) -> bool:
        """The flag first, then the atomic queued -> cancelled: a worker that took the job in
        between finds the flag at its first chunk."""
        settings = self._parts.settings
        self._r.set(cancel_key(settings.redis_prefix, job_id), reason, ex=int(settings.visibility_timeout_s) + 3600)

        def cancel_if_queued(current: Job) -> bool:
            if current.status is not JobStatus.QUEUED:
                return False
            current.status, current.finished_at = JobStatus.CANCELLED, time.time()
            return True

        return self._parts.store.update_if(job_id, cancel_if_queued) is not None

    async def start(self) -> None:
        logger.info("scale-out queue: jobs go to the Celery workers over Redis")

    async def stop(self) -> None:
        self._r.close()
