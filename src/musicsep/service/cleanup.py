"""Expiry: the files and events of jobs past their TTL are removed; their rows stay to answer 410.

The same pass removes the live segments of jobs that ended more than `live_grace_s` ago
(service/live.py): the final stems have replaced them.

Wherever the files are kept (`ArtifactStore.remove`: the job's folder, or its bucket objects), the
same pass removes them, on every node that runs the cleaner; a second node's pass finds nothing.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import JobStatus


class ExpiryCleaner:
    def __init__(self, parts: JobParts) -> None:
        self._parts = parts
        self._task: asyncio.Task[None] | None = None

    def cleanup_expired(self, now: float | None = None) -> int:
        """One pass; returns how many jobs were past their TTL."""
        store, artifacts, events = self._parts.store, self._parts.artifacts, self._parts.events
        expired = store.expired_before(time.time() if now is None else now)
        for job_id in expired:
            job = store.get_job(job_id)
            if job is None or not job.status.terminal:
                continue
            artifacts.remove(job_id)
            events.forget(job_id)
            job.status = JobStatus.EXPIRED
            store.update_job(job)
        if expired:
            logger.info("expired {} job(s)", len(expired))
        self.sweep_live(now)
        return len(expired)

    def sweep_live(self, now: float | None = None) -> int:
        """Remove the live segments of jobs that ended more than `live_grace_s` ago; how many jobs."""
        moment = time.time() if now is None else now
        removed = self._parts.artifacts.live.sweep(moment - self._parts.settings.live_grace_s)
        if removed:
            logger.info("removed the live segments of {} finished job(s)", removed)
        return removed

    def start(self) -> None:
        self._task = asyncio.create_task(self._periodically())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _periodically(self) -> None:
        while True:
            await asyncio.sleep(self._parts.settings.cleanup_interval_s)
            self.cleanup_expired()
