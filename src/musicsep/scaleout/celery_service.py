"""The job service of the scale-out mode: Redis store and event log, Celery queue.

The same `JobService` the embedded mode uses (so links, results, terminal events and expiry are
built by the same code), with three parts swapped:

- jobs and events live in Redis (`RedisStore`, `RedisEventLog`), so every API node and worker
  sees the same job and the same log;
- admission sends a Celery task instead of taking an in-process slot; Redis being unreachable
  answers 503 before anything is promised (`BrokerUnavailable`, a `ServiceUnavailable`);
- the API never runs a pipeline. `run_delivered` is what a worker does with a delivered task:
  take the job (atomically, so a cancel and a worker cannot both win), count the attempt, run
  the pipeline with a cancel flag read from Redis between chunks, then finish like the embedded
  service does.

With `MUSICSEP_STORAGE=s3` inputs and stems live in the bucket: the API uploads the input, the
worker fetches it, uploads the stems before `completed`, and every stem link is a presigned GET
URL (the API's single-stem route answers 404 for those jobs), and the zip of all stems is streamed
from the bucket by the API node (`stem_files`).

Webhooks of terminal events come from the base service's `_finish` (and from `cancel` here):
the process that appends a terminal event sends its webhook (`MUSICSEP_WEBHOOK_SECRET` set).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from kombu.exceptions import OperationalError
from loguru import logger

from musicsep.config import Settings
from musicsep.model.audio import FORMATS
from musicsep.model.errors import Cancelled, storage_full
from musicsep.scaleout.celery_app import TASK, celery_priority, make_celery
from musicsep.scaleout.redis_events import RedisEventLog
from musicsep.scaleout.redis_store import RedisStore
from musicsep.scaleout.s3_store import S3ArtifactStore
from musicsep.service.admission import ServiceUnavailable
from musicsep.service.artifacts import StemOpener, discard
from musicsep.service.health import Health
from musicsep.service.idempotency import replay_of
from musicsep.service.job_service import Created, JobService, LinkBuilder
from musicsep.service.jobs import Job, JobSpec, JobStatus, new_job_id
from musicsep.service.store import DuplicateIdempotencyKey

#: How often a running job looks at its cancel flag in Redis (the engine checks between chunks).
_CANCEL_POLL_S = 0.2
_RETRY_AFTER_S = 5


class BrokerUnavailable(ServiceUnavailable):
    """Redis cannot be reached: nothing was queued, the client should retry (503 queue_unavailable)."""

    def __init__(self) -> None:
        super().__init__("the job queue cannot be reached right now; nothing was queued, retry shortly",
                         _RETRY_AFTER_S)


class BrokerAdmission:
    """What the routes read from admission, answered from Redis (no in-process slots here)."""

    def __init__(self, client: redis.Redis, store: RedisStore, slots: int) -> None:
        self._r = client
        self._store = store
        self.slots = slots

    def check(self, *, wait: bool = True) -> None:
        try:
            self._r.ping()
        except redis.RedisError:
            raise BrokerUnavailable() from None

    @property
    def depth(self) -> int:
        return self._store.count_by_status().get(JobStatus.QUEUED.value, 0)

    @property
    def running(self) -> frozenset[str]:
        return frozenset(job.id for job in self._store.list_jobs([JobStatus.RUNNING], limit=10_000))

    def position(self, job_id: str) -> int | None:
        return None


class CeleryJobService(JobService):
    def __init__(self, settings: Settings, *, loader: Any, signer: Any, links: LinkBuilder, **kwargs: Any) -> None:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)
        store = RedisStore(client, settings.redis_prefix)
        events = RedisEventLog(settings.redis_url, settings.redis_prefix)
        super().__init__(settings, loader=loader, signer=signer, links=links, store=store, events=events, **kwargs)
        self._r = client
        self.admission = BrokerAdmission(client, store, settings.max_concurrent)  # type: ignore[assignment]
        self.celery = make_celery(settings)
        self.celery.conf.broker_transport_options["socket_connect_timeout"] = 2
        self.celery.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
        self.s3: S3ArtifactStore | None = None
        if settings.storage == "s3":
            assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
            self.s3 = S3ArtifactStore(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url or None,
                                      prefix=settings.s3_prefix)

    def _cancel_key(self, job_id: str) -> str:
        return f"{self.settings.redis_prefix}cancel:{job_id}"

    # --- lifecycle: Celery redelivers what a dead worker left, so there is nothing to recover -----
    async def start(self) -> None:
        self._seq = self.store.next_seq()
        self._cleaner = asyncio.create_task(self._clean_periodically())

    def _finish(self, job: Job, status: JobStatus, payload: dict[str, Any]) -> None:
        super()._finish(job, status, payload)
        if self.s3 is not None:
            self.s3.remove_input(job.id)

    # --- S3: presigned links instead of the API's own download routes ------------------------
    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        if self.s3 is None:
            return super().stem_links(job)
        left = int((job.expires_at or 0) - time.time())
        ttl = max(1, min(self.settings.s3_url_ttl_s, left))
        stems = (job.result or {}).get("stems", {})
        return {
            name: {"url": self.s3.stem_url(job.id, info["file"], ttl), "format": info["format"],
                   "bytes": info["bytes"]}
            for name, info in stems.items()
        }

    def stem_files(self, job_id: str) -> dict[str, StemOpener]:
        """S3: the zip is streamed from the bucket through this API node, each object read a chunk
        at a time off its `get_object` body, so memory stays one chunk whatever the stems weigh.

        Chosen over answering 404 with "the stems are at their presigned links" because the zip
        is the one download a browser or script cannot assemble from those links itself, and
        the same signed `zip_url` then works on every deployment. Its cost is the zip's bytes
        passing through the API node once, for the callers who ask for it; single stems still
        come straight from the bucket. Every object is checked (HEAD) before the first byte,
        so one that is gone is a 404, not a zip cut short after a 200.
        """
        if self.s3 is None:
            return super().stem_files(job_id)
        stems = (self.get(job_id).result or {}).get("stems", {})
        return {info["file"]: self.s3.stem_opener(job_id, info["file"]) for info in stems.values()}

    def stem_file(self, job_id: str, name: str) -> tuple[Path, dict[str, Any]]:
        if self.s3 is not None:
            raise KeyError(name)  # the API's download route answers 404: the links point at the bucket
        return super().stem_file(job_id, name)

    def cleanup_expired(self, now: float | None = None) -> int:
        if self.s3 is not None:
            for job_id in self.store.expired_before(time.time() if now is None else now):
                self.s3.remove(job_id)
        return super().cleanup_expired(now)

    # --- API side ---------------------------------------------------------------------------
    def health(self) -> Health:
        """Unavailable while Redis cannot be reached: no job can be taken, listed or followed."""
        try:
            self._r.ping()
            return Health(True, self.admission.slots, self.admission.depth, len(self.admission.running),
                          {"redis": True})
        except redis.RedisError:
            return Health(False, self.admission.slots, None, None, {"redis": False})

    def create(
        self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None, wait: bool = True
    ) -> Created:
        try:
            return self._create(spec, upload, filename=filename, request_id=request_id)
        except redis.RedisError:
            discard(upload)
            raise BrokerUnavailable() from None

    def _create(self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None) -> Created:
        if spec.idempotency_key and (existing := self.store.find_by_idempotency_key(spec.idempotency_key)):
            discard(upload)
            return Created(replay_of(self.get(existing), spec), existing=True)
        self.admission.check()
        job = Job(id=new_job_id(), spec=spec, seq=self._seq, request_id=request_id, filename=filename)
        self._seq += 1
        if upload is not None:  # None: an audio_url job, whose worker fetches the input itself
            input_path = self.artifacts.input_path(job.id)
            input_path.parent.mkdir(parents=True, exist_ok=True)
            upload.replace(input_path)
            if self.s3 is not None:
                # Workers may run elsewhere: the input goes to the bucket, not the local disk.
                self.s3.put_input(job.id, input_path)
                self.artifacts.remove(job.id)
        try:
            self.store.insert_job(job)
        except DuplicateIdempotencyKey as dup:
            self.artifacts.remove(job.id)
            if self.s3 is not None:
                self.s3.remove_input(job.id)  # what this attempt put in the bucket
            return Created(replay_of(self.get(dup.job_id), spec), existing=True)
        self.events.append(job.id, "queued", {"position": self.admission.depth})
        try:
            self.celery.send_task(TASK, args=[job.id], priority=celery_priority(spec.priority))
        except (OperationalError, redis.RedisError, OSError):
            # Not queued after all: the job must not sit `queued` forever, and the caller gets 503.
            logger.bind(job_id=job.id).exception("could not queue the job")
            self._finish(job, JobStatus.FAILED, {"code": "queue_unavailable", "message": "the job could not be queued"})
            raise BrokerUnavailable() from None
        logger.bind(job_id=job.id).info("job queued: model={} priority={}", spec.model, spec.priority)
        return Created(job)

    def cancel(self, job_id: str, reason: str) -> Job:
        """Queued: cancelled here at once. Running: the worker sees the flag within one chunk."""
        job = self.get(job_id)
        if job.status.terminal:
            return job
        self._r.set(self._cancel_key(job_id), reason, ex=int(self.settings.visibility_timeout_s) + 3600)

        def cancel_if_queued(current: Job) -> bool:
            if current.status is not JobStatus.QUEUED:
                return False
            current.status, current.finished_at = JobStatus.CANCELLED, time.time()
            current.expires_at = current.finished_at + self.settings.result_ttl_s
            current.error = {"reason": reason}
            return True

        cancelled = self.store.update_if(job_id, cancel_if_queued)  # type: ignore[attr-defined]
        if cancelled is not None:
            event = self.events.append(job_id, JobStatus.CANCELLED.value, {"reason": reason})
            self.artifacts.remove(job_id)
            if self.s3 is not None:
                self.s3.remove(job_id)
            self.metrics.finished.labels(JobStatus.CANCELLED.value).inc()
            self.notify_webhook(cancelled, event)
            return cancelled
        return job

    # --- worker side ------------------------------------------------------------------------
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

        job = self.store.update_if(job_id, take)  # type: ignore[attr-defined]
        if job is None:
            log.info("task skipped: the job is cancelled, finished or gone")
            return
        log = log.bind(request_id=job.request_id)
        try:
            self._run_taken(job, log)
        except Exception as exc:  # storage or Redis failing around the pipeline: never leave it `running`
            if (full := storage_full(exc)) is not None:  # the input's download filled the worker's disk
                self._fail(job, full, log)
                return
            log.exception("job failed unexpectedly around the separation")
            self._finish(job, JobStatus.FAILED, {
                "code": "internal_error",
                "message": f"the job's files could not be fetched or stored (request id {job.request_id})",
            })

    def _run_taken(self, job: Job, log) -> None:
        """The attempt of a job this worker has taken: input, pipeline, stems, terminal event."""
        job_id = job.id
        if job.attempts > self.settings.max_attempts:
            self._finish(job, JobStatus.FAILED, {
                "code": "worker_lost",
                "message": f"the worker running this job stopped {job.attempts - 1} times; it was not run again",
            })
            return
        self.artifacts.clear_stems(job_id)
        uploaded = not job.spec.audio_url  # a URL job's input is fetched by the pipeline
        if uploaded and self.s3 is not None and not self.artifacts.input_path(job_id).exists():
            try:
                self.s3.get_input(job_id, self.artifacts.input_path(job_id))
            except ClientError:
                log.warning("the job's input is not in the bucket")
        if uploaded and not self.artifacts.input_path(job_id).exists():
            self._finish(job, JobStatus.FAILED, {"code": "input_lost", "message": "the uploaded file was lost"})
            return
        if job.attempts > 1:
            self.events.append(job_id, "queued", {
                "position": 0, "reason": "the worker running this job stopped; it runs again",
            })
        log.info("job started (attempt {})", job.attempts)
        cancel, done = threading.Event(), threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(job_id, cancel, done), daemon=True)
        watcher.start()
        try:
            output = self._pipeline(
                job.spec,
                self.artifacts.input_path(job_id),
                self.artifacts.stems_dir(job_id),
                loader=self.loader,
                options=self._options,
                emit=lambda type_, payload: self.events.append(job_id, type_, payload),
                cancel=cancel,
            )
        except Cancelled:
            reason = self._r.get(self._cancel_key(job_id))
            self._finish(job, JobStatus.CANCELLED, {"reason": reason.decode() if reason else "cancelled"})
            log.info("job cancelled")
        except Exception as exc:
            self._fail(job, exc, log)
        else:
            if self.s3 is not None:
                media_type = FORMATS[job.spec.format].media_type
                for path in output.stems.values():
                    self.s3.put_stem(job_id, path, media_type)
            asyncio.run(self._complete(job, output))
            log.info("job completed")
        finally:
            done.set()
            watcher.join(timeout=5)
            if self.s3 is not None:
                self.artifacts.remove(job_id)  # the bucket has it all; the worker's disk keeps nothing

    def _watch_cancel(self, job_id: str, cancel: threading.Event, done: threading.Event) -> None:
        key = self._cancel_key(job_id)
        while not done.wait(_CANCEL_POLL_S):
            try:
                if self._r.exists(key):
                    cancel.set()
                    return
            except redis.RedisError:
                continue  # Redis away for a moment: keep running, look again
