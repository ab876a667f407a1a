"""The work of one job, run in a worker thread: load → (decode → separate → encode) → analyse.

Decoding, separation and encoding stream together inside the engine's `separate_file`; this
module adds what a job needs around it: the `started` event, progress events thinned to what a
person can see (the analysis' too, as stage `analysing`), the optional analysis (with each
stem's preview and peaks written meanwhile) and the measured timings. It blocks, so it is only ever
called through `ThreadRunner`, never on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicsep.config import Settings
from musicsep.model.errors import storage_full_is_typed
from musicsep.service.fallbacks import with_stems_note
from musicsep.service.fetch import FetchLimits
from musicsep.service.inputs import fetch_input, fetch_limits
from musicsep.service.jobs import JobSpec
from musicsep.service.previews import BackgroundPreviews, StemPreview

#: Emits one event (type, payload) into the job's log; safe to call from the worker thread.
Emit = Callable[[str, dict[str, Any]], None]

#: Progress events closer than this many percent are merged (stage and chunk changes always pass).
_MIN_PERCENT_STEP = 1.0
#: The `progress` stage while the track is analysed (after the engine's decode, separate, encode).
ANALYSING = "analysing"


@dataclass
class EngineOptions:
    """Server-wide settings of a job's work that the job does not choose."""

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 1
    max_duration_s: float | None = None
    #: Caps and SSRF allowance of `audio_url` downloads.
    fetch: FetchLimits = field(default_factory=FetchLimits)
    #: The job's live spool, made from (level, announce) (service/live.LiveSpool); None: no live
    #: stems (MUSICSEP_LIVE=false, or a server-wide options object not yet given a job).
    live: Callable[[str, Callable[[int, int], None]], Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        return cls(
            device=settings.device,
            precision=settings.precision,
            batch_size=settings.batch_size,
            max_duration_s=settings.max_duration_s,
            fetch=fetch_limits(settings),
        )


@dataclass
class PipelineOutput:
    model: str  # what actually ran
    device: str
    samplerate: int
    duration_s: float
    stems: dict[str, Path]
    analysis: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None
    #: Each stem's preview files when the pipeline wrote them ({}: it tried and could not); None:
    #: it did not, and the finisher writes them.
    previews: dict[str, StemPreview] | None = None


class ProgressThinner:
    """Passes on engine progress when a person could notice the change, never out of order.

    Every event carries the live frontier (`ready_frames`, `ready_s`: what every stem has final
    and readable, service/live.py); a frontier that moves by a segment or more is sent at once,
    repeating the last stage and percent. Called from the engine's thread only."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._last: tuple[str, int, float] | None = None
        self._payload: dict[str, Any] = {"stage": "decode", "percent": 0.0, "chunk": 0, "chunks": 0}
        self._ready = (0, 0.0)

    def __call__(self, progress: Any) -> None:
        last = self._last
        if (
            last is None
            or progress.stage != last[0]
            or progress.chunk != last[1]
            or progress.percent - last[2] >= _MIN_PERCENT_STEP
            or progress.percent >= 100.0
        ):
            self._last = (progress.stage, progress.chunk, progress.percent)
            self._payload = {
                "stage": progress.stage,
                "percent": progress.percent,
                "chunk": progress.chunk,
                "chunks": progress.chunks,
                "eta_s": progress.eta_s,
                "elapsed_s": progress.elapsed_s,
            }
            self._send()

    def ready(self, frames: int, samplerate: int) -> None:
        """The live frontier moved (a segment was kept, or the last one): sent at once."""
        self._ready = (frames, round(frames / samplerate, 4) if samplerate else 0.0)
        self._send()

    def _send(self) -> None:
        self.emit_with_ready("progress", self._payload)

    def emit_with_ready(self, type_: str, payload: dict[str, Any]) -> None:
        """`emit` with the frontier added (the analysis' progress events carry it too)."""
        self._emit(type_, {**payload, "ready_frames": self._ready[0], "ready_s": self._ready[1]})


class AnalysisProgress:
    """The analysis as `progress` events of stage `analysing`: `percent` stays at the 100 the
    separation reached (it never goes back, which clients' bars rely on) and `fraction` is the
    analysis' own, 0 to 1, in steps a person can see."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._started = time.monotonic()
        self._last: float | None = None

    def __call__(self, fraction: float) -> None:
        last = self._last
        if last is not None and fraction - last < _MIN_PERCENT_STEP / 100.0 and fraction < 1.0:
            return
        self._last = fraction
        elapsed = time.monotonic() - self._started
        eta = None if fraction <= 0.0 else round(elapsed * max(1.0 - fraction, 0.0) / fraction, 2)
        self._emit(
            "progress",
            {
                "stage": ANALYSING,
                "percent": 100.0,
                "fraction": round(fraction, 4),
                "chunk": 0,
                "chunks": 0,
                "eta_s": eta,
                "elapsed_s": round(elapsed, 4),
            },
        )


def separation_request(spec: JobSpec, options: EngineOptions) -> Any:
    """The engine's request: what the job chose (its JobParams) and what the server chooses."""
    from musicsep.model.separate import SeparationRequest

    return SeparationRequest(
        **spec.engine_fields(), batch_size=options.batch_size, device=options.device, precision=options.precision
    )


@storage_full_is_typed()  # a contextmanager is also a decorator: the whole call
def run_pipeline(
    spec: JobSpec,
    input_path: Path,
    stems_dir: Path,
    *,
    loader: Any,
    options: EngineOptions,
    emit: Emit,
    cancel: threading.Event,
) -> PipelineOutput:
    """Blocking: the whole job. Raises the model layer's typed errors, `Cancelled` on cancel.

    An `audio_url` job's input is fetched first (unless an earlier attempt left it complete): a
    refused or failed download ends the job before any model is loaded. A full disk anywhere in
    the job (the download, the decoded track, a stem) is `StorageFull`, so the job fails with
    `storage_full` rather than `internal_error`; the writers have removed their partial files.
    """
    from musicsep.model.analysis import analyze_file
    from musicsep.model.audio import probe
    from musicsep.model.live import live_level
    from musicsep.model.loading import resolve_device
    from musicsep.model.separate import load_separator, separate_file

    fetch_started = time.monotonic()
    if spec.audio_url and not input_path.exists():
        fetch_input(spec.audio_url, input_path, options.fetch, max_duration_s=options.max_duration_s, cancel=cancel)
    started = time.monotonic()
    request = separation_request(spec, options)
    # What the engine will run, loaded here (the engine then takes it from the loader's cache) so
    # that `started` names it: an ensemble job's `model` is the server default, which is not run.
    separator, fallback_reason = load_separator(loader, request)
    loaded = time.monotonic()
    if spec.two_stems:
        stems = [spec.two_stems, f"no_{spec.two_stems}"]
    else:
        stems = list(spec.stems or separator.sources)
    requested = separator.name if spec.ensemble else spec.model
    started_reason = with_stems_note(fallback_reason, requested, separator.name, list(separator.sources))
    emit(
        "started",
        {
            "model": separator.name,
            "requested_model": requested,
            "fallback_reason": started_reason,
            "device": str(getattr(separator, "device", resolve_device(options.device))),
            "stems": stems,
            # The header's claim, for display only; the decoder enforces the real limit.
            "duration_s": probe(input_path).duration_s,
        },
    )
    thinner = ProgressThinner(emit)
    result = separate_file(
        input_path,
        stems_dir,
        request,
        loader=loader,
        on_progress=thinner,
        cancel=cancel,
        max_duration_s=options.max_duration_s,
        live=options.live(live_level(request.clip), thinner.ready) if options.live is not None else None,
    )
    separated = time.monotonic()
    analysis = None
    # Written while the track is analysed; payload=base64 jobs get none (docs/server.md).
    previews = BackgroundPreviews(dict(result.stems), result.samplerate) if spec.payload == "url" else None
    try:
        if spec.analyze:
            report = AnalysisProgress(thinner.emit_with_ready)
            report(0.0)
            found = analyze_file(
                input_path, max_duration_s=options.max_duration_s, on_progress=report, expected_s=result.duration_s
            )
            report(1.0)
            analysis = found.model_dump(mode="json")
            emit("analysis", analysis)
    finally:
        written = previews.result() if previews is not None else None
    timings = {
        **({"fetch_s": round(started - fetch_started, 4)} if spec.audio_url else {}),
        "load_s": round(loaded - started, 4),
        "separate_s": round(separated - loaded, 4),
        "analyze_s": round(time.monotonic() - separated, 4),
        **({"previews_s": round(previews.seconds, 4)} if previews is not None else {}),
        **{f"engine_{k}": v for k, v in (result.timings or {}).items()},
    }
    return PipelineOutput(
        model=result.model,
        device=str(result.device),
        samplerate=result.samplerate,
        duration_s=result.duration_s,
        stems=dict(result.stems),
        analysis=analysis,
        timings=timings,
        fallback_reason=_with_started_reason(result.fallback_reason, fallback_reason, started_reason),
        previews=written,
    )


def _with_started_reason(engine_reason: str | None, fallback_reason: str | None, started: str | None) -> str | None:
    """The engine's notes (the fallback, then any recovery) with the fallback in the words the
    `started` event used, so that both events and the job view say the same."""
    if engine_reason is None or not fallback_reason or started is None:
        return engine_reason
    return engine_reason.replace(fallback_reason, started, 1)
