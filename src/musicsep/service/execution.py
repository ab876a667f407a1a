"""One attempt of a taken job: the pipeline on the job's local folders, then its end.

The same code runs a job in the embedded service's worker threads (local_queue.py) and in a
Celery worker (scaleout/worker.py); they differ only in how the attempt is taken, where the
cancel flag comes from, and on which thread the end is written, which is theirs to decide.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from musicsep.config import Settings
from musicsep.model.errors import Cancelled
from musicsep.service.finishing import JobFinisher, Prepared
from musicsep.service.interfaces import ArtifactStore
from musicsep.service.jobs import Job, JobStatus
from musicsep.service.live import LiveSpool
from musicsep.service.pipeline import Emit, EngineOptions, PipelineOutput

#: `service.pipeline.run_pipeline`, or a stand-in with its contract (tests/service/fake_pipeline.py).
Pipeline = Callable[..., PipelineOutput]


class JobExecution:
    def __init__(
        self, settings: Settings, *, loader: Any, pipeline: Pipeline, artifacts: ArtifactStore, finisher: JobFinisher
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.pipeline = pipeline
        self.artifacts = artifacts
        self.finisher = finisher
        self.options = EngineOptions.from_settings(settings)

    def has_input(self, job: Job) -> bool:
        """Whether the attempt can start: a URL job fetches its input in the pipeline; an upload
        must be (or be brought) in the job's folder. Blocking (a bucket download)."""
        return bool(job.spec.audio_url) or self.artifacts.fetch_input(job.id)

    def fail_input_lost(self, job: Job) -> None:
        self.finisher.finish(job, JobStatus.FAILED, {"code": "input_lost", "message": "the uploaded file was lost"})

    def work(self, job: Job, emit: Emit, cancel: threading.Event) -> Prepared:
        """Blocking: the pipeline, then the result made ready. Raises what the pipeline raises."""
        if cancel.is_set():
            raise Cancelled("cancelled before it started")
        folders = self.artifacts.folders

        def recording(type_: str, payload: dict[str, Any]) -> None:
            if type_ == "started":
                self._record_start(job, payload)
            emit(type_, payload)

        options = self.options
        if self.settings.live:  # the job's own spool, in the deployment's LiveAudio
            options = dataclasses.replace(options, live=partial(LiveSpool, self.artifacts.live, job.id))
        output = self.pipeline(
            job.spec,
            folders.input_path(job.id),
            folders.stems_dir(job.id),
            loader=self.loader,
            options=options,
            emit=recording,
            cancel=cancel,
        )
        return self.finisher.prepare(job, output)

    def _record_start(self, job: Job, started: dict[str, Any]) -> None:
        """The model that runs and why it is not the one asked, stored before the `started`
        event is appended: a reader that sees the event reads the same in the job view."""
        job.model_used, job.fallback_reason = started.get("model"), started.get("fallback_reason")

        def record(current: Job) -> bool:
            current.model_used, current.fallback_reason = job.model_used, job.fallback_reason
            return not current.status.terminal

        self.finisher.store.update_if(job.id, record)

    def settle(self, job: Job, outcome: Prepared | Exception, *, cancel_reason: str, log: Any) -> None:
        """The end of an attempt: `completed`, `cancelled` or `failed`, exactly one of them."""
        if isinstance(outcome, Cancelled):
            self.finisher.finish(job, JobStatus.CANCELLED, {"reason": cancel_reason})
            log.info("job cancelled: {}", cancel_reason)
        elif isinstance(outcome, Exception):
            self.finisher.fail(job, outcome, log)
        else:
            self.finisher.complete(job, outcome)
            log.info("job completed")
