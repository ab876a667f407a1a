"""Creating a job: idempotency, admission, the stored row, the queue, in that order.

An idempotent repeat is answered before admission (the first job already holds its place, so a
full queue does not refuse it). The row is written before the job is queued (a worker that takes
it must find it); when queueing then fails, the job ends `failed` at once and its idempotency key
is freed, so that the client's retry with the same key creates a job instead of replaying the
failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from musicsep.service.admission import ServiceUnavailable
from musicsep.service.artifacts import discard
from musicsep.service.idempotency import replay_of
from musicsep.service.interfaces import JobQueue
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobSpec, JobStatus, new_job_id
from musicsep.service.song_names import default_title
from musicsep.service.sqlite_store import DuplicateIdempotencyKey


@dataclass(frozen=True)
class Created:
    job: Job
    #: True when the idempotency key matched an earlier job, which is returned instead.
    existing: bool = False


class JobCreation:
    def __init__(self, parts: JobParts, queue: JobQueue, get: Callable[[str], Job]) -> None:
        """`get` reads a job as the API shows it (JobNotFound, JobExpired): a replay of an
        expired job is the same 410 as reading it."""
        self._parts = parts
        self._queue = queue
        self._get = get
        self._seq = 0

    def start(self) -> None:
        """Continue the sequence where the store ends (ties of priority run oldest first)."""
        self._seq = self._parts.store.next_seq()

    def create(
        self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None, wait: bool = True
    ) -> Created:
        """Admit a job for `upload` (moved into the job's input) or raise QueueFull / NoFreeSlot /
        ServiceUnavailable, with the upload removed. `upload` is None for an `audio_url` job: the
        pipeline fetches its input when it runs. `filename` is the song's file name (song_names.py);
        the job's title is the spec's, else that name without its extension."""
        try:
            created = self._create(spec, upload, filename=filename, request_id=request_id, wait=wait)
        except BaseException:
            discard(upload)
            raise
        if created.existing:  # an idempotent repeat: the first job has its input already
            discard(upload)
        return created

    def _create(
        self, spec: JobSpec, upload: Path | None, *, filename: str | None, request_id: str | None, wait: bool
    ) -> Created:
        store, artifacts = self._parts.store, self._parts.artifacts
        if spec.idempotency_key and (first := store.find_by_idempotency_key(spec.idempotency_key)):
            return self._replay(first, spec)
        self._queue.check(wait=wait)
        title = spec.title or default_title(filename)
        job = Job(id=new_job_id(), spec=spec, seq=self._seq, request_id=request_id, filename=filename, title=title)
        self._seq += 1
        if upload is not None:
            artifacts.accept_input(job.id, upload)
        try:
            store.insert_job(job)
        except DuplicateIdempotencyKey as dup:
            artifacts.remove(job.id)
            return self._replay(dup.job_id, spec)
        except BaseException:
            artifacts.remove(job.id)
            raise
        try:
            self._queue.enqueue(job)
        except ServiceUnavailable:
            self._not_queued(job)
            raise
        logger.bind(job_id=job.id).info("job admitted: model={} priority={}", spec.model, spec.priority)
        return Created(job)

    def _not_queued(self, job: Job) -> None:
        """The job's row is written but no queue holds it: it must not sit `queued` forever, nor
        its idempotency key answer the client's retry with this failure."""
        log = logger.bind(job_id=job.id)
        log.warning("could not queue the job")
        try:
            self._parts.store.unbind_idempotency_key(job.id)
            self._parts.finisher.finish(
                job, JobStatus.FAILED, {"code": "queue_unavailable", "message": "the job could not be queued"}
            )
            self._parts.artifacts.remove(job.id)
        except Exception:  # the store went with the queue: the caller gets its 503 all the same
            log.exception("could not mark the unqueued job failed")

    def _replay(self, job_id: str, spec: JobSpec) -> Created:
        return Created(replay_of(self._get(job_id), spec), existing=True)
