"""Reading a job's live segments: what is ready, and waiting for the next one without polling.

A reader that asks for a segment not ready yet waits on the job's event log, which every
deployment can follow live (SQLite with an in-process wake-up, Redis Streams with XREAD BLOCK):
the spool appends a `progress` event with the new `ready_frames` only after the segment and the
frontier are stored (service/live.py), so one look at the stored frontier after each such event
is enough, locally and across machines alike. Nothing is buffered per reader but the one segment
it is sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from musicsep.protocol import TERMINAL_EVENTS
from musicsep.service.job_parts import JobParts
from musicsep.service.jobs import Job, JobStatus
from musicsep.service.live import SEGMENT_FRAMES, LiveState

#: Longest wait a reader may ask for, and the default (seconds).
MAX_WAIT_S = 30.0
DEFAULT_WAIT_S = 10.0
#: Bound on the look-ups of one wait (each follows a stored frontier change or a timeout).
_MAX_LOOKS = 100_000


class LiveDisabled(Exception):
    """MUSICSEP_LIVE is off on this server."""


class LiveNotReady(Exception):
    """The segment is not ready within the wait; ask again."""


class LivePastEnd(Exception):
    def __init__(self, total_frames: int) -> None:
        super().__init__(f"the track has {total_frames} frames: this segment starts at or after its end")
        self.total_frames = total_frames


class LiveUnknownStem(Exception):
    """The job has no stem of that name."""


class LiveEnded(Exception):
    """The segment will never be read: the job was cancelled or failed (`code` says which; its
    segments are removed when it ends), or a completed job's grace period is over (`live_gone`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class LiveSegment:
    data: bytes  # interleaved float32
    frames: int
    state: LiveState


def _ended(job: Job) -> LiveEnded:
    error: dict[str, Any] = job.error or {}
    if job.status is JobStatus.CANCELLED:
        return LiveEnded("job_cancelled", f"the job was cancelled: {error.get('reason') or 'cancelled'}")
    if job.status is JobStatus.FAILED:
        code, message = error.get("code", "internal_error"), error.get("message", "the job failed")
        return LiveEnded("job_failed", f"the job failed ({code}): {message}")
    return LiveEnded("live_gone", "this job's live segments are gone; download the finished stem instead")


class LiveReader:
    """The live side of a job service, built per request from its parts (cheap: no state)."""

    def __init__(self, parts: JobParts) -> None:
        self._parts = parts
        self._live = parts.artifacts.live

    def _check_enabled(self) -> None:
        if not self._parts.settings.live:
            raise LiveDisabled()

    async def _state(self, job_id: str) -> LiveState | None:
        return await anyio.to_thread.run_sync(self._live.state, job_id)

    async def info(self, job: Job) -> dict[str, Any]:
        """GET …/live's answer: the frontier and what the segments are."""
        self._check_enabled()
        state = await self._state(job.id)
        done = job.status.terminal or (state is not None and state.done)
        if state is None:
            stems = (
                [job.spec.two_stems, f"no_{job.spec.two_stems}"] if job.spec.two_stems else list(job.spec.stems or [])
            )
            return {
                "samplerate": 0,
                "channels": 0,
                "segment_frames": SEGMENT_FRAMES,
                "ready_frames": 0,
                "ready_s": 0.0,
                "segments_ready": 0,
                "total_frames": None,
                "done": done,
                "state": job.status.value,
                "stems": stems,
                "level": _level(job.spec.clip),
            }
        return {
            "samplerate": state.samplerate,
            "channels": state.channels,
            "segment_frames": state.segment_frames,
            "ready_frames": state.ready_frames,
            "ready_s": round(state.ready_frames / state.samplerate, 4),
            "segments_ready": state.segments_ready,
            "total_frames": state.total_frames,
            "done": done,
            "state": job.status.value,
            "stems": state.stems,
            "level": state.level,
        }

    async def segment(self, job: Job, stem: str, index: int, wait_s: float) -> LiveSegment:
        """Segment `index` of `stem`, waiting up to `wait_s` for it. LiveNotReady, LivePastEnd,
        LiveUnknownStem, LiveEnded, LiveDisabled."""
        self._check_enabled()
        deadline = time.monotonic() + max(0.0, min(wait_s, MAX_WAIT_S))
        job_id = job.id
        for _ in range(_MAX_LOOKS):
            last = self._parts.events.last(job_id)
            cursor = last.id if last is not None else 0
            job = self._parts.store.get_job(job_id) or job
            state = await self._state(job_id)
            found = await self._look(job, state, stem, index)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LiveNotReady()
            await self._wait_for_change(job_id, cursor, state, remaining)
        raise LiveNotReady()

    async def _look(self, job: Job, state: LiveState | None, stem: str, index: int) -> LiveSegment | None:
        """The segment when it can be read now; raises when it never will; None: wait."""
        if state is not None:
            if stem not in state.stems:
                raise LiveUnknownStem()
            if state.past_end(index):
                raise LivePastEnd(state.total_frames)
            if state.ready(index):
                try:
                    data = await anyio.to_thread.run_sync(self._live.segment, job.id, state, stem, index)
                except KeyError:  # removed meanwhile: the job ended, or its grace period did
                    raise _ended(self._parts.store.get_job(job.id) or job) from None
                return LiveSegment(data, state.frames_of(index), state)
        if job.status.terminal:
            if state is None and job.result and stem not in job.result.get("stems", {}):
                raise LiveUnknownStem()
            raise _ended(job)
        return None

    async def _wait_for_change(self, job_id: str, cursor: int, state: LiveState | None, timeout: float) -> None:
        """Until an event after `cursor` moves the frontier past `state` (or ends the job), or
        `timeout`. Followed, not polled: the log wakes this when something is appended."""
        known = state.ready_frames if state is not None else -1
        complete = state is not None and state.ready_frames >= state.total_frames
        batches = self._parts.events.follow(job_id, cursor)
        try:
            with anyio.move_on_after(timeout):
                async for batch in batches:
                    if _moves(batch, known, complete):
                        return
        finally:
            close = getattr(batches, "aclose", None)  # an async generator: its store connection closed now
            if close is not None:
                await close()


def _moves(batch: list[Any], known: int, complete: bool) -> bool:
    """Whether a batch of events ends the job or moves the frontier past `known` frames (any
    progress once every frame is in: the next look sees `done`)."""
    for event in batch:
        if event.type in TERMINAL_EVENTS:
            return True
        if event.type == "progress":
            frames = event.data.get("ready_frames")
            if frames is not None and (frames > known or complete):
                return True
    return False


def _level(clip: str) -> str:
    from musicsep.model.live import live_level

    return live_level(clip)
