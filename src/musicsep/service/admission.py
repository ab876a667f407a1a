"""Admission: a counting semaphore of run slots in front of a bounded priority queue.

Lives in the service, never in a route decorator (DESIGN §11, cog's decorator-order bug). The
check "is there room?" and the taking of the room happen in one synchronous call on the loop
thread, so two requests in the same tick cannot both take the last place. That is why the slots
are counted here instead of with `asyncio.Semaphore`, whose `acquire` would put an await between
the check and the take.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from musicsep.protocol import PRIORITY_DEFAULT


class QueueFull(Exception):
    """Every slot is busy and the queue holds its maximum; the caller should retry later."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the server is busy: every slot is taken and the queue is full")
        self.retry_after_s = retry_after_s


class ServiceUnavailable(Exception):
    """Something the service needs to take a job cannot be reached (scale-out: Redis, the queue and
    job store). Nothing was stored or queued; the caller should retry after `retry_after_s` (503).

    Distinct from QueueFull: that is load, this is an outage, and a client or an operator reacts
    to them differently.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class NoFreeSlot(Exception):
    """`wait=false` was asked and no slot is free right now."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("no separation slot is free right now")
        self.retry_after_s = retry_after_s


class Admission:
    """Decides which job runs next: highest priority first, then oldest (lowest seq).

    `start` is called (synchronously) with a job id whenever that job takes a slot; the caller
    must call `release` exactly once when the job's worker thread has really ended.
    `on_positions` receives {job_id: position} for every queued job whose position changed.
    """

    def __init__(
        self,
        slots: int,
        queue_size: int,
        start: Callable[[str], None],
        on_positions: Callable[[dict[str, int]], None],
        retry_after_s: int = 10,
    ) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self._start = start
        self._on_positions = on_positions
        self._retry_after_s = retry_after_s
        self._heap: list[tuple[int, int, str]] = []
        self._running: set[str] = set()
        self._positions: dict[str, int] = {}
        #: Model loads waiting for or holding a slot (service/model_loads.py): id -> its start.
        self._loads: dict[str, Callable[[], None]] = {}
        self._last_seq = -1

    # --- state ------------------------------------------------------------------------------
    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    @property
    def depth(self) -> int:
        return len(self._heap)

    def position(self, job_id: str) -> int | None:
        return self._positions.get(job_id)

    def free_slots(self) -> int:
        return self.slots - len(self._running)

    # --- changes ----------------------------------------------------------------------------
    def check(self, *, wait: bool = True) -> None:
        """Raise when a new job would be refused; call `submit` right after, with no await between."""
        if not wait and (self.free_slots() <= 0 or self._heap):
            raise NoFreeSlot(self._retry_after_s)
        if self.free_slots() <= 0 and len(self._heap) >= self.queue_size:
            raise QueueFull(self._retry_after_s)

    def submit(self, job_id: str, priority: int, seq: int) -> int:
        """Queue the job, starting it at once when a slot is free; returns its position (0 = started).

        No bound is applied here: restart recovery re-submits jobs the server had already
        accepted, and those are never refused.
        """
        # Negative priority: heapq pops the smallest tuple, and 5 is the most urgent.
        heapq.heappush(self._heap, (-priority, seq, job_id))
        self._last_seq = max(self._last_seq, seq)
        self._dispatch()
        return self._positions.get(job_id, 0)

    def submit_load(self, load_id: str, start: Callable[[], None]) -> None:
        """Queue a model load like a job of the default priority submitted now; `start` is called when it
        takes a slot (at once when one is free), and the caller must `release` it after.

        It ties with the newest job's seq and then sorts after it: a `load-` id compares above
        every (hex) job id. Its place counts in the jobs' positions, and none is announced for it.
        """
        self._loads[load_id] = start
        heapq.heappush(self._heap, (-PRIORITY_DEFAULT, self._last_seq, load_id))
        self._dispatch()

    def remove(self, job_id: str) -> bool:
        """Take a queued job out (cancel); False when it is not queued."""
        for index, entry in enumerate(self._heap):
            if entry[2] == job_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                self._positions.pop(job_id, None)
                self._loads.pop(job_id, None)
                self._report_positions()
                return True
        return False

    def close(self) -> None:
        """Start nothing more (graceful shutdown): a slot freed by a stopping job must not start the
        next one, which would be marked running and then cut off; queued jobs stay queued."""
        self.slots = 0

    def release(self, job_id: str) -> None:
        """The job's worker thread has ended: free its slot and start the next job."""
        self._running.discard(job_id)
        self._dispatch()

    def _dispatch(self) -> None:
        started: list[str] = []
        while self._heap and self.free_slots() > 0:
            _, _, job_id = heapq.heappop(self._heap)
            self._running.add(job_id)
            self._positions.pop(job_id, None)
            started.append(job_id)
        self._report_positions()
        for job_id in started:
            load = self._loads.pop(job_id, None)
            if load is not None:
                load()
            else:
                self._start(job_id)

    def _report_positions(self) -> None:
        order = sorted(self._heap)
        current = {job_id: index + 1 for index, (_, _, job_id) in enumerate(order)}
        changed = {
            job_id: pos
            for job_id, pos in current.items()
            if self._positions.get(job_id) != pos and job_id not in self._loads
        }
        self._positions = current
        if changed:
            self._on_positions(changed)


@asynccontextmanager
async def admitted(admission: Admission) -> AsyncIterator[None]:
    """Hold a run slot for the block (a model load): wait for it behind the queue like a job of
    the default priority, or raise QueueFull at once when the queue is full too."""
    admission.check(wait=True)
    load_id = f"load-{uuid.uuid4().hex}"
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start() -> None:  # Admission calls back on the loop thread (a job's end releases its slot there)
        if not started.done():
            started.set_result(None)

    admission.submit_load(load_id, start)
    try:
        await started
    except BaseException:  # the caller went away while waiting
        if not admission.remove(load_id):  # it had just taken a slot
            admission.release(load_id)
        raise
    try:
        yield
    finally:
        admission.release(load_id)
