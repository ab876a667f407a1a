"""Progress reports from the engine to whoever watches (CLI bar, SSE events, webhooks).

Percent is derived from work actually done (chunks finished, frames decoded), never from a timer,
and a `ProgressTracker` guarantees it never goes backwards and ends at exactly 100.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    stage: str  # "decode" | "separate" | "encode"
    percent: float
    chunk: int
    chunks: int
    elapsed_s: float
    eta_s: float | None


ProgressCallback = Callable[[Progress], None]

# Share of the bar each stage owns. Separation dominates the cost by two orders of magnitude.
_STAGE_SPANS = {"decode": (0.0, 5.0), "separate": (5.0, 97.0), "encode": (97.0, 100.0)}


class ProgressTracker:
    """Maps (stage, fraction of that stage) to a monotonic percent and an ETA from the chunk rate."""

    def __init__(self, callback: ProgressCallback | None, chunks: int = 0) -> None:
        self._callback = callback
        self._start = time.monotonic()
        self._percent = 0.0
        self.chunks = chunks
        self.chunk = 0
        self._separate_started: float | None = None

    def report(self, stage: str, fraction: float) -> None:
        low, high = _STAGE_SPANS[stage]
        percent = max(self._percent, min(high, low + (high - low) * max(0.0, min(1.0, fraction))))
        self._percent = percent
        if self._callback is not None:
            self._callback(
                Progress(
                    stage,
                    round(percent, 2),
                    self.chunk,
                    self.chunks,
                    round(time.monotonic() - self._start, 3),
                    self._eta(),
                )
            )

    def chunk_done(self) -> None:
        now = time.monotonic()
        if self._separate_started is None:
            self._separate_started = now
        self.chunk += 1
        self.report("separate", self.chunk / max(1, self.chunks))

    def start_separation(self) -> None:
        self._separate_started = time.monotonic()

    def finish(self) -> None:
        self.chunk = self.chunks
        self._percent = 100.0
        if self._callback is not None:
            self._callback(
                Progress("encode", 100.0, self.chunk, self.chunks, round(time.monotonic() - self._start, 3), 0.0)
            )

    def _eta(self) -> float | None:
        if self._separate_started is None or self.chunk == 0 or not self.chunks:
            return None
        per_chunk = (time.monotonic() - self._separate_started) / self.chunk
        return round(per_chunk * (self.chunks - self.chunk), 2)
