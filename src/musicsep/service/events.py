"""The per-job event log: the one source every reader (POST stream, EventSource, webhooks) reads.

Appends happen on the event-loop thread only (worker threads hop over with
`loop.call_soon_threadsafe`), so ids are assigned without locks and are 1, 2, 3 … with no gaps,
also across a restart because the next id is read back from the store. Readers replay from the
store and then wait for a wake-up; nothing is sent that is not in the log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator

from musicsep.service.jobs import TERMINAL_EVENTS
from musicsep.service.store import SqliteStore


@dataclass(frozen=True)
class Event:
    """One entry of a job's log; `data` carries `"event": type` too, for `onmessage`-only clients."""

    id: int
    type: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class EventLog:
    """Append-only, replayable, followable event log backed by the SQLite store."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._next_id: dict[str, int] = {}
        self._wakeups: dict[str, asyncio.Event] = {}

    def append(self, job_id: str, type_: str, payload: dict[str, Any]) -> Event:
        """Persist the event, then wake every follower of this job. Loop thread only."""
        event_id = self._next_id.get(job_id) or self._store.last_event_id(job_id) + 1
        event = Event(event_id, type_, {"event": type_, **payload})
        self._store.append_event(job_id, event_id, type_, event.data)
        if event.terminal:
            self._next_id.pop(job_id, None)
        else:
            self._next_id[job_id] = event_id + 1
        wakeup = self._wakeups.pop(job_id, None)
        if wakeup is not None:
            wakeup.set()
        return event

    def read(self, job_id: str, after: int = 0) -> list[Event]:
        return [Event(i, t, d) for i, t, d in self._store.events(job_id, after)]

    def last(self, job_id: str) -> Event | None:
        events = self._store.events(job_id, self._store.last_event_id(job_id) - 1)
        return Event(*events[-1]) if events else None

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Yield batches of events with id > `after`, live, until (and including) the terminal one.

        Batches, not single events: a reader that joins late (or a replay) gets everything
        already logged in one piece, which a stream sends in one write.
        """
        while True:
            # Take the wake-up before reading: no await separates the two, so no append can
            # fall between the read and the wait.
            wakeup = self._wakeups.setdefault(job_id, asyncio.Event())
            events = self.read(job_id, after)
            for index, event in enumerate(events):
                if event.terminal:
                    yield events[: index + 1]
                    return
            if events:
                yield events
                after = events[-1].id
            else:
                await wakeup.wait()

    def forget(self, job_id: str) -> None:
        """Drop an expired job's events (its row stays so the API can answer 410)."""
        self._store.delete_events(job_id)
        self._next_id.pop(job_id, None)
