"""How many `GET …/events` streams are open, per job and per caller, and the 429 past the limits.

Each open stream holds a connection, a few tasks and (in scale-out) a Redis connection, so one
caller must not be able to open them without bound. The counts live in this process only: behind
several API processes each has its own, and the limits hold per process (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field

from fastapi import Request
from prometheus_client import CollectorRegistry, Gauge

from musicsep.api.errors import ApiError

#: What a refused client is told to wait: streams last minutes, an immediate retry would be refused too.
RETRY_AFTER_S = 10


def caller_of(request: Request, authenticated: bool) -> str:
    """Who the per-caller limit counts: the credential when one was checked valid, else the client
    address (a valid per-job token, or no auth at all). Only a digest of a credential is kept, and
    only valid ones count, so an unchecked header cannot make a fresh bucket per request."""
    if authenticated:
        header = request.headers.get("authorization") or request.headers.get("x-api-key", "")
        scheme, _, value = header.partition(" ")
        secret = value.strip() if scheme.lower() == "bearer" else header
        return "key:" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    return "addr:" + (request.client.host if request.client else "unknown")


@dataclass
class Slot:
    """One open stream's place in the counts; `release` is idempotent."""

    slots: StreamSlots
    job_id: str
    caller: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots._give_back(self)


@dataclass
class StreamSlots:
    per_job: int
    per_caller: int
    _jobs: Counter[str] = field(default_factory=Counter)
    _callers: Counter[str] = field(default_factory=Counter)

    @property
    def open(self) -> int:
        return sum(self._jobs.values())

    def open_for(self, job_id: str) -> int:
        return self._jobs[job_id]

    def take(self, job_id: str, caller: str) -> Slot:
        """A slot for a new stream, or ApiError 429 when the job or the caller has its fill."""
        if self._jobs[job_id] >= self.per_job:
            raise _too_many(f"this job already has {self.per_job} open event streams")
        if self._callers[caller] >= self.per_caller:
            raise _too_many(f"you already have {self.per_caller} open event streams")
        self._jobs[job_id] += 1
        self._callers[caller] += 1
        return Slot(self, job_id, caller)

    def _give_back(self, slot: Slot) -> None:
        for counts, key in ((self._jobs, slot.job_id), (self._callers, slot.caller)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]


def _too_many(message: str) -> ApiError:
    return ApiError(
        429, "too_many_streams", f"{message}; close one or retry later", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def register_metrics(registry: CollectorRegistry, slots: StreamSlots) -> None:
    """Open streams and the event loop's task count on /metrics: what a leak of streams would
    show first (bench/stream_churn.py reads both). Read at scrape time; call from the lifespan,
    so the loop whose tasks are counted is the server's."""
    loop = asyncio.get_running_loop()
    Gauge("musicsep_event_streams", "GET …/events streams open in this process.", registry=registry).set_function(
        lambda: slots.open
    )
    Gauge(
        "musicsep_event_loop_tasks", "asyncio tasks alive on the server's event loop.", registry=registry
    ).set_function(lambda: len(asyncio.all_tasks(loop)))
