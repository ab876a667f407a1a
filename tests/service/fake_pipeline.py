"""A stand-in for `service.pipeline.run_pipeline` that the test steps, as cog's FakeWorker is.

A fake, and why: the real pipeline loads a model with torch and separates for seconds, while
what the service tests check (admission, cancel, recovery, the event log) is the job service
around it. The fake keeps the real pipeline's contract, which is all the service relies on:
- it is called as `pipeline(spec, input_path, stems_dir, loader=, options=, emit=, cancel=)` in
  the service's worker thread, and blocks that thread as long as a separation would;
- it emits `started` first, then `progress` (and `analysis` when the spec asks), through `emit`;
- it looks at `cancel` at every step, as the engine does between chunks, and raises `Cancelled`
  then, having left no stem behind;
- it returns a `PipelineOutput` whose stems are real (tiny) files in `stems_dir`, or raises
  what the test hands it.
The test decides when each step happens: `await fake.started(job_id)`, `fake.emit_progress`,
`fake.finish`, `fake.fail`. Each hand-over is a `threading.Condition` wait bounded by
`timeout_s` on both sides, so a forgotten step fails the test with a message instead of hanging,
and nothing waits on the clock. The test-side waits run in a thread (`asyncio.to_thread`): the
event loop they are awaited on is the service's, and it must keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicsep.model.errors import Cancelled
from musicsep.service.jobs import JobSpec
from musicsep.service.pipeline import Emit, EngineOptions, PipelineOutput

SAMPLERATE = 44100
#: What the engine's models separate when a spec names no stems.
DEFAULT_STEMS = ("drums", "bass", "other", "vocals")


@dataclass
class _Call:
    """One pipeline call: what the service passed, and the steps the test has handed it."""

    spec: JobSpec
    options: EngineOptions
    loader: Any
    cancel: threading.Event
    input_bytes: bytes
    steps: deque[tuple[str, Any]] = field(default_factory=deque)
    given: int = 0
    taken: int = 0
    ended: bool = False


class SteppedPipeline:
    """The pipeline of a JobService under test; one instance per service."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._calls: dict[str, _Call] = {}
        self._released = False
        #: Job ids in the order their pipeline calls began (a re-run appears again).
        self.order: list[str] = []

    # --- the pipeline side (the service's worker thread) ----------------------------------
    def __call__(
        self,
        spec: JobSpec,
        input_path: Path,
        stems_dir: Path,
        *,
        loader: Any,
        options: EngineOptions,
        emit: Emit,
        cancel: threading.Event,
    ) -> PipelineOutput:
        job_id = input_path.parent.name  # the job's folder is named by its id (service/artifacts.py)
        stems = [spec.two_stems, f"no_{spec.two_stems}"] if spec.two_stems else list(spec.stems or DEFAULT_STEMS)
        call = _Call(spec, options, loader, cancel, input_path.read_bytes() if input_path.exists() else b"")
        emit(
            "started",
            {
                "model": spec.model,
                "requested_model": spec.model,
                "fallback_reason": None,
                "device": "cpu",
                "stems": stems,
                "duration_s": 1.0,
            },
        )
        with self._cond:
            self._calls[job_id] = call
            self.order.append(job_id)
            self._cond.notify_all()
        try:
            while True:
                kind, value = self._next_step(job_id, call)
                try:
                    if cancel.is_set() or kind == "released":
                        raise Cancelled("cancelled between two chunks")
                    if kind == "progress":
                        emit(
                            "progress",
                            {
                                "stage": "separate",
                                "percent": value,
                                "chunk": 1,
                                "chunks": 1,
                                "eta_s": None,
                                "elapsed_s": 0.0,
                            },
                        )
                    elif kind == "fail":
                        raise value
                    elif kind == "finish":
                        return self._output(spec, stems, stems_dir, emit)
                finally:
                    with self._cond:
                        call.taken += 1
                        self._cond.notify_all()
        finally:
            with self._cond:
                call.ended = True
                self._cond.notify_all()

    def _next_step(self, job_id: str, call: _Call) -> tuple[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: call.steps or self._released, self.timeout_s):
                raise TimeoutError(f"the test gave job {job_id} no step within {self.timeout_s:g} s")
            return call.steps.popleft() if call.steps else ("released", None)

    @staticmethod
    def _output(spec: JobSpec, stems: list[str], stems_dir: Path, emit: Emit) -> PipelineOutput:
        stems_dir.mkdir(parents=True, exist_ok=True)
        files = {name: _write_silence(stems_dir / f"{name}.wav") for name in stems}
        analysis = None
        if spec.analyze:
            analysis = {"tempo_bpm": 120.0, "key": "C major", "duration_s": 0.01}
            emit("analysis", analysis)
        return PipelineOutput(
            model=spec.model,
            device="cpu",
            samplerate=SAMPLERATE,
            duration_s=0.01,
            stems=files,
            analysis=analysis,
            timings={"separate_s": 0.0},
        )

    # --- the test side (awaited on the service's event loop) --------------------------------
    async def started(self, job_id: str) -> None:
        """Wait until the job's pipeline call has begun (its `started` event is then in the log)."""
        await self._wait(lambda: self._live(job_id) is not None, f"job {job_id} to start in the pipeline")

    async def emit_progress(self, job_id: str, percent: float) -> None:
        """One chunk: a `progress` event, or `Cancelled` when the job's cancel flag is up."""
        await self._step(job_id, ("progress", percent))

    async def finish(self, job_id: str) -> None:
        """The last chunk: write the stems and return a PipelineOutput (or `Cancelled`)."""
        await self._step(job_id, ("finish", None))

    async def fail(self, job_id: str, error: Exception) -> None:
        """The next chunk raises `error` (or `Cancelled`, when the cancel flag is up)."""
        await self._step(job_id, ("fail", error))

    async def cancel_requested(self, job_id: str) -> None:
        """Wait until the service has raised the job's cancel flag (the engine sees it next chunk)."""
        await self.started(job_id)
        call = self._live(job_id)
        assert call is not None
        if not await asyncio.to_thread(call.cancel.wait, self.timeout_s):
            raise AssertionError(f"job {job_id}'s cancel flag was not raised within {self.timeout_s:g} s")

    def block_until_started(self, count: int = 1) -> list[str]:
        """From a thread that is not the service's loop (a browser test): wait until `count`
        pipeline calls have begun; their job ids in order."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.order) >= count, self.timeout_s):
                raise AssertionError(f"timed out after {self.timeout_s:g} s waiting for {count} job(s) to start")
            return list(self.order)

    def call_of(self, job_id: str) -> _Call:
        """What the service passed to the job's latest pipeline call."""
        with self._cond:
            return self._calls[job_id]

    def release(self) -> None:
        """From now on every call ends with `Cancelled` at its next step, which comes at once: the
        teardown of a test that left jobs running or queued (or failed half-way), so that
        `JobService.stop` does not wait for steps that will never come."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def _live(self, job_id: str) -> _Call | None:
        call = self._calls.get(job_id)
        return call if call is not None and not call.ended else None

    async def _step(self, job_id: str, step: tuple[str, Any]) -> None:
        """Hand the job one step and wait until its thread has acted on it: the events it emitted
        are then queued on the loop ahead of this coroutine's wake-up."""
        await self.started(job_id)
        with self._cond:
            call = self._live(job_id)
            assert call is not None, f"job {job_id} ended before its step"
            call.steps.append(step)
            call.given += 1
            target = call.given
            self._cond.notify_all()
        await self._wait(lambda: call.taken >= target, f"job {job_id} to take its step {step[0]}")

    async def _wait(self, condition: Callable[[], bool], what: str) -> None:
        def wait() -> None:
            with self._cond:
                if not self._cond.wait_for(condition, self.timeout_s):
                    raise AssertionError(f"timed out after {self.timeout_s:g} s waiting for {what}")

        await asyncio.to_thread(wait)


def _write_silence(path: Path, frames: int = 441) -> Path:
    """10 ms of stereo 16-bit silence: a real WAV file, written without numpy."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLERATE)
        out.writeframes(b"\0" * frames * 4)
    return path
