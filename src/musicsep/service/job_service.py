"""The job service: creates, runs, cancels, recovers and expires jobs. No HTTP in here.

Every state change goes to the SQLite store and every thing a watcher should see goes to the
job's event log, in that order, on the event-loop thread. The API layer turns the typed errors
below into statuses; the pipeline's own typed errors become `failed` events.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
from loguru import logger

from musicsep.config import Settings
from musicsep.model.errors import Cancelled, MusicsepError
from musicsep.service.admission import Admission
from musicsep.service.artifacts import ArtifactStore, Signer, StemOpener, discard
from musicsep.service.events import Event, EventLog
from musicsep.service.health import Health
from musicsep.service.idempotency import replay_of
from musicsep.service.interfaces import JobEventLog, JobStore
from musicsep.service.jobs import Job, JobSpec, JobStatus, new_job_id
from musicsep.service.metrics import ServiceMetrics
from musicsep.service.pipeline import EngineOptions, PipelineOutput, run_pipeline
from musicsep.service.runner import ThreadRunner
from musicsep.service.store import DuplicateIdempotencyKey, SqliteStore
from musicsep.service.webhooks import webhook_notifier

#: Builds the public link of one job resource: (job_id, stem name or "stems.zip", expires, sig).
LinkBuilder = Callable[[str, str, int, str], str]
Pipeline = Callable[..., PipelineOutput]


class JobNotFound(Exception):
    """No job has this id."""


class JobExpired(Exception):
    """The job existed, but its results passed their TTL and were removed."""


@dataclass(frozen=True)
class Created:
    job: Job
    #: True when the idempotency key matched an earlier job, which is returned instead.
    existing: bool = False


class JobService:
    def __init__(
        self,
        settings: Settings,
        *,
        loader: Any,
        signer: Signer,
        links: LinkBuilder,
        pipeline: Pipeline = run_pipeline,
        store: JobStore | None = None,
        events: JobEventLog | None = None,
    ) -> None:
        """`store` and `events` default to SQLite; scale-out passes the Redis ones (same methods)."""
        self.settings = settings
        self.loader = loader
        self.signer = signer
        self._links = links
        self._pipeline = pipeline
        if (store is None) != (events is None):
            raise ValueError("pass both a job store and an event log, or neither (SQLite)")
        if store is None or events is None:
            sqlite = SqliteStore(settings.data_dir / "musicsep.sqlite3", job_folders=settings.data_dir / "jobs")
            store, events = sqlite, EventLog(sqlite)
        self.store: JobStore = store
        self.events: JobEventLog = events
        self.artifacts = ArtifactStore(settings.data_dir)
        self.runner = ThreadRunner(settings.max_concurrent, nice=settings.worker_nice)
        self.admission = Admission(
            settings.max_concurrent, settings.queue_size, start=self._start, on_positions=self._announce_positions
        )
        self.metrics = ServiceMetrics(self.store.count_by_status, lambda: self.admission.depth,
                                      lambda: self.runner.live)
        self._options = EngineOptions.from_settings(settings)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._requeue_reasons: dict[str, str] = {}
        self._seq = 0
        self._stopping = False
        self._cleaner: asyncio.Task[None] | None = None
        self.webhooks = webhook_notifier(settings)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover what a previous process left, then start the TTL cleaner."""
        self._seq = self.store.next_seq()
        self.cleanup_expired()
        self._recover()
        self._cleaner = asyncio.create_task(self._clean_periodically())

    async def stop(self) -> None:
        """Stop every running job within one chunk; they stay queued for the next start."""
        self._stopping = True
        self.admission.close()
        if self._cleaner is not None:
            self._cleaner.cancel()
        for cancel in self._cancels.values():
            cancel.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self.runner.shutdown()
        if self.webhooks is not None:
            await anyio.to_thread.run_sync(self.webhooks.close)
        self.store.close()

    def _recover(self) -> None:
        """Queued jobs run again; a job that was running is re-queued while below max_attempts."""
        pending = self.store.list_jobs([JobStatus.QUEUED, JobStatus.RUNNING], limit=1_000_000)
        for job in sorted(pending, key=lambda j: j.seq):
            self.artifacts.clear_stems(job.id)
            if job.status is JobStatus.RUNNING:
                if job.attempts >= self.settings.max_attempts:
                    self._finish(job, JobStatus.FAILED, {
                        "code": "worker_lost",
                        "message": f"the server stopped while running this job, {job.attempts} times; "
                        "it was not run again",
                    })
                    continue
                job.status = JobStatus.QUEUED
                self.store.update_job(job)
                self._requeue_reasons[job.id] = "the server restarted while this job was running; it runs again"
            if not job.spec.audio_url and not self.artifacts.input_path(job.id).exists():
                self._finish(job, JobStatus.FAILED, {"code": "input_lost", "message": "the uploaded file was lost"})
                continue
            logger.bind(job_id=job.id, request_id=job.request_id).info("recovered job {}", job.status.value)
            self.admission.submit(job.id, job.spec.priority, job.seq)

    # --- creating ---------------------------------------------------------------------------
    def create(
        self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None, wait: bool = True
    ) -> Created:
        """Admit a job for `upload` (moved into the job's folder) or raise QueueFull / NoFreeSlot.

        `upload` is None for an `audio_url` job: the pipeline fetches its input when it runs.
        """
        if spec.idempotency_key and (first := self.store.find_by_idempotency_key(spec.idempotency_key)):
            discard(upload)
            return Created(replay_of(self.get(first), spec), existing=True)
        try:
            self.admission.check(wait=wait)
        except Exception:
            discard(upload)
            raise
        job = Job(id=new_job_id(), spec=spec, seq=self._seq, request_id=request_id, filename=filename)
        self._seq += 1
        input_path = self.artifacts.input_path(job.id)
        input_path.parent.mkdir(parents=True, exist_ok=True)
        if upload is not None:
            os.replace(upload, input_path)
        try:
            self.store.insert_job(job)
        except DuplicateIdempotencyKey as dup:
            self.artifacts.remove(job.id)
            return Created(replay_of(self.get(dup.job_id), spec), existing=True)
        logger.bind(job_id=job.id).info("job admitted: model={} priority={}", spec.model, spec.priority)
        if self.admission.submit(job.id, spec.priority, job.seq) == 0:
            # Started at once: its first event still says where it stood (nowhere to wait).
            self.events.append(job.id, "queued", {"position": 0})
        return Created(job)

    def _announce_positions(self, changed: dict[str, int]) -> None:
        for job_id, position in changed.items():
            payload: dict[str, Any] = {"position": position}
            if reason := self._requeue_reasons.pop(job_id, None):
                payload["reason"] = reason
            self.events.append(job_id, "queued", payload)

    # --- running ----------------------------------------------------------------------------
    def _start(self, job_id: str) -> None:
        """Admission gave the job a slot (synchronously, on the loop thread)."""
        if reason := self._requeue_reasons.pop(job_id, None):
            self.events.append(job_id, "queued", {"position": 0, "reason": reason})
        self._cancels[job_id] = threading.Event()
        self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(job_id))

    async def _run(self, job_id: str) -> None:
        job = self.get(job_id)
        log = logger.bind(job_id=job_id, request_id=job.request_id)
        cancel = self._cancels[job_id]
        loop = asyncio.get_running_loop()

        def emit(type_: str, payload: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.events.append, job_id, type_, payload)

        job.status, job.started_at = JobStatus.RUNNING, time.time()
        job.attempts += 1
        self.store.update_job(job)
        log.info("job started (attempt {})", job.attempts)
        work = partial(
            self._pipeline,
            job.spec,
            self.artifacts.input_path(job_id),
            self.artifacts.stems_dir(job_id),
            loader=self.loader,
            options=self._options,
            emit=emit,
            cancel=cancel,
        )
        try:
            if cancel.is_set():
                raise Cancelled("cancelled before it started")
            output = await self.runner.run(job_id, work)
        except Cancelled:
            if self._stopping:
                # A graceful shutdown is not the job's fault: it stays queued, attempt not counted.
                job.status, job.attempts = JobStatus.QUEUED, job.attempts - 1
                self.store.update_job(job)
                log.info("job put back in the queue for the next start")
            else:
                reason = self._cancel_reasons.pop(job_id, "cancelled")
                self._finish(job, JobStatus.CANCELLED, {"reason": reason})
                log.info("job cancelled: {}", reason)
        except Exception as exc:
            self._fail(job, exc, log)
        else:
            await self._complete(job, output)
            log.info("job completed")
        finally:
            self._cancels.pop(job_id, None)
            self._tasks.pop(job_id, None)
            self.admission.release(job_id)

    async def _complete(self, job: Job, output: PipelineOutput) -> None:
        finished = time.time()
        job.expires_at = finished + self.settings.result_ttl_s
        stems: dict[str, dict[str, Any]] = {
            name: {"file": path.name, "format": job.spec.format, "bytes": path.stat().st_size}
            for name, path in output.stems.items()
        }
        total_s = finished - (job.started_at or finished)
        timings = {
            **output.timings,
            "queued_s": round((job.started_at or finished) - job.created_at, 4),
            "total_s": round(total_s, 4),
        }
        job.result = {
            "model": output.model,
            "requested_model": job.spec.model,
            "fallback_reason": output.fallback_reason,
            "device": output.device,
            "samplerate": output.samplerate,
            "duration_s": output.duration_s,
            "stems": stems,
            "analysis": output.analysis,
            "timings": timings,
        }
        total = sum(info["bytes"] for info in stems.values())
        if job.spec.payload == "base64" and total > self.settings.max_inline_mb * 1024 * 1024:
            self._finish(job, JobStatus.FAILED, {
                "code": "payload_too_large",
                "message": f"the stems total {total / 1048576:.1f} MB, over the "
                f"{self.settings.max_inline_mb:g} MB cap for payload=base64; ask for payload=url",
            })
            return
        links = self.stem_links(job)
        for name, link in links.items():
            self.events.append(job.id, "stem", {"name": name, **link})
        delivered: dict[str, Any] = links
        if job.spec.payload == "base64":
            delivered = await anyio.to_thread.run_sync(self.artifacts.inline, job.id, stems)
        self.metrics.separation_seconds.observe(total_s)
        if output.duration_s:
            self.metrics.realtime_factor.observe(total_s / output.duration_s)
        self._finish(job, JobStatus.COMPLETED, {
            "stems": delivered, "analysis": output.analysis, "timings": timings,
            "model": output.model, "fallback_reason": output.fallback_reason})

    def _fail(self, job: Job, exc: Exception, log) -> None:
        """The `failed` event for what a pipeline raised: a typed error in its own words; anything
        else logged with its traceback and sent as a generic message with the request id."""
        if isinstance(exc, MusicsepError):
            self._finish(job, JobStatus.FAILED, {"code": exc.code, "message": exc.message})
            log.info("job failed: {}", exc.code)
            return
        log.opt(exception=exc).error("job failed unexpectedly")
        self._finish(job, JobStatus.FAILED, {
            "code": "internal_error",
            "message": f"the separation failed unexpectedly (request id {job.request_id})",
        })

    def _finish(self, job: Job, status: JobStatus, payload: dict[str, Any]) -> None:
        """Persist the terminal state, then append the one terminal event."""
        job.status, job.finished_at = status, time.time()
        job.expires_at = job.expires_at or job.finished_at + self.settings.result_ttl_s
        if status is not JobStatus.COMPLETED:
            job.error = payload
            self.artifacts.clear_stems(job.id)
        self.store.update_job(job)
        event = self.events.append(job.id, status.value, payload)
        self.artifacts.remove_input(job.id)
        self.metrics.finished.labels(status.value).inc()
        self.notify_webhook(job, event)

    def notify_webhook(self, job: Job, event: Event) -> None:
        """Queue the webhook of a terminal event when the job asked for one (never blocks)."""
        if self.webhooks is not None and job.spec.webhook_url:
            self.webhooks.notify(job.id, job.spec.webhook_url, event)

    # --- cancelling -------------------------------------------------------------------------
    def cancel(self, job_id: str, reason: str) -> Job:
        """Cancel a queued job at once, a running one within one chunk; finished jobs stay as they are."""
        job = self.get(job_id)
        if self.admission.remove(job_id):
            self._finish(job, JobStatus.CANCELLED, {"reason": reason})
        elif job_id in self._cancels:
            self._cancel_reasons.setdefault(job_id, reason)
            self._cancels[job_id].set()
        return job

    # --- reading ----------------------------------------------------------------------------
    def health(self) -> Health:
        """Embedded: nothing outside this process to be down."""
        return Health(True, self.admission.slots, self.admission.depth, len(self.admission.running))

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

    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        """Signed links valid until the result expires, keyed by stem name."""
        stems = (job.result or {}).get("stems", {})
        links = {}
        for name, info in stems.items():
            expires, sig = self.signer.sign_until("stem", job.id, name, int(job.expires_at or 0))
            url = self._links(job.id, name, expires, sig)
            links[name] = {"url": url, "format": info["format"], "bytes": info["bytes"]}
        return links

    def zip_link(self, job: Job) -> str | None:
        if job.status is not JobStatus.COMPLETED:
            return None
        expires, sig = self.signer.sign_until("stem", job.id, "stems.zip", int(job.expires_at or 0))
        return self._links(job.id, "stems.zip", expires, sig)

    def stem_file(self, job_id: str, name: str) -> tuple[Path, dict[str, Any]]:
        """The file of stem `name` of a completed job; KeyError when the job has no such stem."""
        job = self.get(job_id)
        info = (job.result or {}).get("stems", {})[name]
        return self.artifacts.stem_path(job_id, info["file"]), info

    def stem_files(self, job_id: str) -> dict[str, StemOpener]:
        """An opener of each stem by file name, for the zip; KeyError when one is gone."""
        stems = (self.get(job_id).result or {}).get("stems", {})
        return {info["file"]: self.artifacts.stem_opener(job_id, info["file"]) for info in stems.values()}

    # --- expiry -----------------------------------------------------------------------------
    def cleanup_expired(self, now: float | None = None) -> int:
        """Remove the files and events of jobs past their TTL; their rows stay to answer 410."""
        expired = self.store.expired_before(time.time() if now is None else now)
        for job_id in expired:
            job = self.store.get_job(job_id)
            if job is None or not job.status.terminal:
                continue
            self.artifacts.remove(job_id)
            self.events.forget(job_id)
            job.status = JobStatus.EXPIRED
            self.store.update_job(job)
        if expired:
            logger.info("expired {} job(s)", len(expired))
        return len(expired)

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cleanup_interval_s)
            self.cleanup_expired()
