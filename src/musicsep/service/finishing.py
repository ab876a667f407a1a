"""How a job ends: its result built from the pipeline's output, then one terminal event.

Shared by every place a job can end (the embedded runner, a Celery worker, a cancel on an API
node, restart recovery), so that a result, a `failed` payload or a webhook looks the same
whichever process wrote it. The state is persisted before the terminal event is appended: a
reader that sees the event can always read the finished job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from loguru import logger

from musicsep.config import Settings
from musicsep.model.errors import MusicsepError
from musicsep.protocol import STEM_FILES
from musicsep.service.events import Event
from musicsep.service.interfaces import ArtifactStore, JobEventLog, JobStore
from musicsep.service.jobs import Job, JobStatus
from musicsep.service.metrics import ServiceMetrics
from musicsep.service.pipeline import PipelineOutput
from musicsep.service.previews import PEAKS_MEDIA_TYPE, PREVIEW_MEDIA_TYPE, BackgroundPreviews
from musicsep.service.webhooks import WebhookNotifier


@dataclass(frozen=True)
class Prepared:
    """A finished pipeline's result, made ready in the worker thread (the blocking part: the
    stems uploaded where they are kept, a base64 payload read) for `complete`."""

    total_s: float
    duration_s: float
    #: The `completed` event's stems: inline data for payload=base64, None for links.
    inline: dict[str, Any] | None = None
    #: The `failed` payload when the result cannot be delivered as asked.
    refused: dict[str, Any] | None = None


class JobFinisher:
    def __init__(
        self,
        settings: Settings,
        *,
        store: JobStore,
        events: JobEventLog,
        artifacts: ArtifactStore,
        metrics: ServiceMetrics,
        webhooks: WebhookNotifier | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.artifacts = artifacts
        self.metrics = metrics
        self.webhooks = webhooks

    def prepare(self, job: Job, output: PipelineOutput) -> Prepared:
        """Blocking: the job's result recorded on `job`, its stems stored. Call in a worker thread."""
        finished = time.time()
        job.expires_at = finished + self.settings.result_ttl_s
        stems: dict[str, dict[str, Any]] = {
            name: {"file": path.name, "format": job.spec.format, "bytes": path.stat().st_size}
            for name, path in output.stems.items()
        }
        started = job.started_at or finished
        timings = {
            **output.timings,
            "queued_s": round(started - job.created_at, 4),
            "total_s": round(finished - started, 4),
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
        cap_mb = self.settings.max_inline_mb
        if job.spec.payload == "base64" and total > cap_mb * 1024 * 1024:
            return Prepared(
                finished - started,
                output.duration_s,
                refused={
                    "code": "payload_too_large",
                    "message": f"the stems total {total / 1048576:.1f} MB, over the {cap_mb:g} MB cap for "
                    "payload=base64; ask for payload=url",
                },
            )
        self.artifacts.store_stems(job.id, output.stems, STEM_FILES[job.spec.format].media_type)
        if job.spec.payload == "url":
            self._store_previews(job, output, stems, timings)
        inline = self.artifacts.folders.inline(job.id, stems) if job.spec.payload == "base64" else None
        return Prepared(finished - started, output.duration_s, inline=inline)

    def _store_previews(
        self, job: Job, output: PipelineOutput, stems: dict[str, dict[str, Any]], timings: dict[str, float]
    ) -> None:
        """Each stem's preview and peaks, kept with the stems and named in its result entry. Not
        for `payload=base64` jobs: their caller takes the stems inline, not through a page."""
        previews = output.previews
        if previews is None:  # a pipeline that did not write them (the real one does, while it analyses)
            background = BackgroundPreviews(output.stems, output.samplerate)
            previews = background.result()
            timings["previews_s"] = round(background.seconds, 4)
        if not previews:
            return
        self.artifacts.store_stems(job.id, {n: p.preview for n, p in previews.items()}, PREVIEW_MEDIA_TYPE)
        self.artifacts.store_stems(job.id, {n: p.peaks for n, p in previews.items()}, PEAKS_MEDIA_TYPE)
        for name, files in previews.items():
            stems[name].update(preview=files.preview.name, peaks=files.peaks.name)

    def complete(self, job: Job, prepared: Prepared) -> None:
        """The `stem` events, then `completed` (or `failed` when the result was refused)."""
        if prepared.refused is not None:
            self.finish(job, JobStatus.FAILED, prepared.refused)
            return
        links = self.artifacts.stem_links(job)
        for name, link in links.items():
            self.events.append(job.id, "stem", {"name": name, **link})
        result = job.result or {}
        self.metrics.separation_seconds.observe(prepared.total_s)
        if prepared.duration_s:
            self.metrics.realtime_factor.observe(prepared.total_s / prepared.duration_s)
        self.finish(
            job,
            JobStatus.COMPLETED,
            {
                "stems": prepared.inline if prepared.inline is not None else links,
                "analysis": result.get("analysis"),
                "timings": result.get("timings"),
                "model": result.get("model"),
                "fallback_reason": result.get("fallback_reason"),
            },
        )

    def fail(self, job: Job, exc: Exception, log: Any = logger) -> None:
        """The `failed` event for what a pipeline raised: a typed error in its own words; anything
        else logged with its traceback and sent as a generic message with the request id."""
        if isinstance(exc, MusicsepError):
            self.finish(job, JobStatus.FAILED, {"code": exc.code, "message": exc.message})
            log.info("job failed: {}", exc.code)
            return
        log.opt(exception=exc).error("job failed unexpectedly")
        self.finish(
            job,
            JobStatus.FAILED,
            {
                "code": "internal_error",
                "message": f"the separation failed unexpectedly (request id {job.request_id})",
            },
        )

    def _settle_live(self, job: Job, status: JobStatus, finished_at: float) -> None:
        """A completed job's live segments stay readable `live_grace_s` more (cleanup.py); an ended one's go at
        once (its readers get 410 with the reason; a full disk gets its room back). After the terminal event and
        best effort: storage that fails here (the bucket unreachable) must not lose the job's end."""
        try:
            if status is JobStatus.COMPLETED:
                self.artifacts.live.ended(job.id, finished_at)
            else:
                self.artifacts.live.remove(job.id)
        except Exception:
            logger.opt(exception=True).warning("job {}: its live segments could not be settled", job.id)

    def finish(self, job: Job, status: JobStatus, payload: dict[str, Any]) -> Event:
        """Persist the terminal state, then append the one terminal event and send its webhook."""
        job.status, job.finished_at = status, time.time()
        job.expires_at = job.expires_at or job.finished_at + self.settings.result_ttl_s
        if status is not JobStatus.COMPLETED:
            job.error = payload
            self.artifacts.clear_stems(job.id)
        self.store.update_job(job)
        event = self.events.append(job.id, status.value, payload)
        self._settle_live(job, status, job.finished_at)
        self.artifacts.remove_input(job.id)
        self.metrics.finished.labels(status.value).inc()
        if self.webhooks is not None and job.spec.webhook_url:
            self.webhooks.notify(job.id, job.spec.webhook_url, event)
        return event
