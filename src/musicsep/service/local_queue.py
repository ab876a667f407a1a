"""The embedded `JobQueue`: admission in this process, and the jobs run in its own threads.

A job that takes a slot (`Admission`) runs as a task on the event loop whose blocking part, the
pipeline, runs in a `ThreadRunner` thread; every store write and event append happens on the loop
thread (the thread's events hop over with `call_soon_threadsafe`). At start it recovers what a
previous process left: queued jobs queue again, a job that was running runs again while below
`max_attempts`, else it fails `worker_lost`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from loguru import logger

from musicsep.model.errors import Cancelled
from musicsep.service.admission import Admission, admitted
from musicsep.service.health import Health
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobStatus
from musicsep.service.runner import ThreadRunner


class LocalQueue:
    def __init__(self, parts: JobParts) -> None:
        settings = parts.settings
        self._parts = parts
        self.runner = ThreadRunner(settings.max_concurrent, nice=settings.worker_nice)
        self.admission = Admission(
            settings.max_concurrent, settings.queue_size, start=self._start, on_positions=self._announce_positions
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._requeue_reasons: dict[str, str] = {}
        self._stopping = False

    # --- what the service reads -------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.admission.slots

    @property
    def depth(self) -> int:
        return self.admission.depth

    @property
    def running(self) -> frozenset[str]:
        return self.admission.running

    @property
    def live_threads(self) -> int:
        return self.runner.live

    def free_slots(self) -> int:
        return self.admission.free_slots()

    def position(self, job_id: str) -> int | None:
        return self.admission.position(job_id)

    def health(self) -> Health:
        """Embedded: nothing outside this process to be down."""
        return Health(True, self.admission.slots, self.admission.depth, len(self.admission.running))

    # --- admission --------------------------------------------------------------------------
    def check(self, *, wait: bool = True) -> None:
        self.admission.check(wait=wait)

    def enqueue(self, job: Job) -> None:
        if self.admission.submit(job.id, job.spec.priority, job.seq) == 0:
            # Started at once: its first event still says where it stood (nowhere to wait).
            self._parts.events.append(job.id, "queued", {"position": 0})

    def hold_slot(self) -> AbstractAsyncContextManager[None]:
        return admitted(self.admission)

    def cancel(self, job_id: str, reason: str) -> bool:
        if self.admission.remove(job_id):
            return True
        if job_id in self._cancels:
            self._cancel_reasons.setdefault(job_id, reason)
            self._cancels[job_id].set()
        return False

    def _announce_positions(self, changed: dict[str, int]) -> None:
        for job_id, position in changed.items():
            payload: dict[str, Any] = {"position": position}
            if reason := self._requeue_reasons.pop(job_id, None):
                payload["reason"] = reason
            self._parts.events.append(job_id, "queued", payload)

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Queued jobs run again; a job that was running is re-queued while below max_attempts."""
        parts = self._parts
        pending = parts.store.list_jobs([JobStatus.QUEUED, JobStatus.RUNNING], limit=1_000_000)
        for job in sorted(pending, key=lambda j: j.seq):
            parts.artifacts.clear_stems(job.id)
            if job.status is JobStatus.RUNNING:
                if job.attempts >= parts.settings.max_attempts:
                    parts.finisher.finish(
                        job,
                        JobStatus.FAILED,
                        {
                            "code": "worker_lost",
                            "message": f"the server stopped while running this job, {job.attempts} times; "
                            "it was not run again",
                        },
                    )
                    continue
                job.status = JobStatus.QUEUED
                parts.store.update_job(job)
                self._requeue_reasons[job.id] = "the server restarted while this job was running; it runs again"
            if not parts.execution.has_input(job):
                parts.execution.fail_input_lost(job)
                continue
            logger.bind(job_id=job.id, request_id=job.request_id).info("recovered job {}", job.status.value)
            self.admission.submit(job.id, job.spec.priority, job.seq)

    async def stop(self) -> None:
        """Stop every running job within one chunk; they stay queued for the next start."""
        self._stopping = True
        self.admission.close()
        for cancel in self._cancels.values():
            cancel.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self.runner.shutdown()

    # --- running ----------------------------------------------------------------------------
    def _start(self, job_id: str) -> None:
        """Admission gave the job a slot (synchronously, on the loop thread)."""
        if reason := self._requeue_reasons.pop(job_id, None):
            self._parts.events.append(job_id, "queued", {"position": 0, "reason": reason})
        self._cancels[job_id] = threading.Event()
        self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(job_id))

    async def _run(self, job_id: str) -> None:
        parts = self._parts
        try:
            job = parts.store.get_job(job_id)
            if job is None:
                return
            log = logger.bind(job_id=job_id, request_id=job.request_id)
            cancel = self._cancels[job_id]
            loop = asyncio.get_running_loop()

            def emit(type_: str, payload: dict[str, Any]) -> None:
                loop.call_soon_threadsafe(parts.events.append, job_id, type_, payload)

            job.status, job.started_at = JobStatus.RUNNING, time.time()
            job.attempts += 1
            parts.store.update_job(job)
            log.info("job started (attempt {})", job.attempts)
            try:
                outcome: Any = await self.runner.run(job_id, partial(parts.execution.work, job, emit, cancel))
            except Exception as exc:
                outcome = exc
            if isinstance(outcome, Cancelled) and self._stopping:
                # A graceful shutdown is not the job's fault: it stays queued, attempt not counted.
                job.status, job.attempts = JobStatus.QUEUED, job.attempts - 1
                parts.store.update_job(job)
                log.info("job put back in the queue for the next start")
                return
            reason = self._cancel_reasons.pop(job_id, "cancelled")
            parts.execution.settle(job, outcome, cancel_reason=reason, log=log)
        finally:
            self._cancels.pop(job_id, None)
            self._tasks.pop(job_id, None)
            self.admission.release(job_id)
