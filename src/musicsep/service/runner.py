"""Runs blocking job work in worker threads, and records each thread's life.

`run` returns only after the worker thread has really returned, even when the awaiting task is
cancelled (anyio holds the join under a shielded cancel scope: `abandon_on_cancel=False`), so a
slot freed after `run` is never shared with a thread that is still separating. The start/end
records are the service's own instrumentation of the engine call: tests and `/metrics` read
them to prove that ordering instead of guessing it with sleeps.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


@dataclass(frozen=True)
class ThreadRecord:
    job_id: str
    what: Literal["start", "end"]
    at: float  # time.monotonic()
    thread_id: int


class ThreadRunner:
    """Worker threads for job pipelines, bounded by the number of run slots."""

    def __init__(self, threads: int, history: int = 1000) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._lock = threading.Lock()
        self._history = history
        self._records: list[ThreadRecord] = []
        self._live = 0

    @property
    def live(self) -> int:
        """Worker threads inside a pipeline right now."""
        with self._lock:
            return self._live

    def records(self) -> list[ThreadRecord]:
        """Start and end of the most recent worker threads, oldest first."""
        with self._lock:
            return list(self._records)

    def _record(self, job_id: str, what: Literal["start", "end"]) -> None:
        with self._lock:
            self._live += 1 if what == "start" else -1
            self._records.append(ThreadRecord(job_id, what, time.monotonic(), threading.get_ident()))
            del self._records[: -self._history]

    async def run(self, job_id: str, work: Callable[[], T]) -> T:
        def instrumented() -> T:
            self._record(job_id, "start")
            try:
                return work()
            finally:
                self._record(job_id, "end")

        return await anyio.to_thread.run_sync(instrumented, abandon_on_cancel=False, limiter=self._limiter)
