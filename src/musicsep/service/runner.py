"""Runs blocking job work in worker threads, and records each thread's life.

`run` returns only after the worker thread has really returned, even when the awaiting task is
cancelled (the wait sits in a shielded cancel scope, as `anyio.to_thread.run_sync` does with
`abandon_on_cancel=False`), so a slot freed after `run` is never shared with a thread that is
still separating. The start/end records are the service's own instrumentation of the engine
call: tests and `/metrics` read them to prove that ordering instead of guessing it with sleeps.

The threads are the runner's own (not anyio's shared pool) so that they can run at a lower
priority: on Linux a thread's nice value is inherited by the threads it creates, and OpenMP
creates torch's compute threads from the thread that first runs a parallel region. Lowering the
separation thread before any torch call therefore lowers every core-bound thread of the job,
and the event loop (streams, uploads, /health) gets a core whenever it needs one. Separation
loses nothing when the server is otherwise idle: a niced thread still gets every idle cycle.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import anyio
from loguru import logger

T = TypeVar("T")


@dataclass(frozen=True)
class ThreadRecord:
    job_id: str
    what: Literal["start", "end"]
    at: float  # time.monotonic()
    thread_id: int


def lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value (Linux only: elsewhere setpriority is per process)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except OSError as exc:
        logger.warning("could not lower the priority of a job thread: {}", exc)


class ThreadRunner:
    """Worker threads for job pipelines, bounded by the number of run slots."""

    def __init__(self, threads: int, history: int = 1000, nice: int = 0) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="musicsep-job", initializer=lower_this_thread, initargs=(nice,)
        )
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

        context = contextvars.copy_context()  # the request id and log bindings follow the job
        future = self._executor.submit(context.run, instrumented)
        with anyio.CancelScope(shield=True):
            result = await asyncio.wrap_future(future)
        return result

    def shutdown(self) -> None:
        """Let running pipelines finish; called when the service closes."""
        self._executor.shutdown(wait=True, cancel_futures=True)
