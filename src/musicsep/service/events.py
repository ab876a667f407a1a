"""The per-job event log: the one source every reader (POST stream, EventSource, webhooks) reads.

Appends happen on the event-loop thread only (worker threads hop over with
`loop.call_soon_threadsafe`), so ids are assigned without locks and are 1, 2, 3 … with no gaps,
also across a restart because the next id is read back from the store. Readers replay from the
store and then wait for a wake-up; nothing is sent that is not in the log.

Replays go page by page (`PAGE_EVENTS`, `PAGE_BYTES`), and an event read back carries its stored
text (service/event_text.py) rather than a decoded dict: a reader holds one page and one chunk
of a long event, never the whole log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

from musicsep.protocol import TERMINAL_EVENTS
from musicsep.service.event_text import EventText, Part, dumps, split
from musicsep.service.sqlite_store import SqliteStore, StoredEvent

#: Most events one replay page holds (a live batch is usually one or two).
PAGE_EVENTS = 256
#: Most stored bytes one page holds, long strings not counted (they are read in chunks).
PAGE_BYTES = 256 * 1024


class Event:
    """One entry of a job's log; `data` carries `"event": type` too, for `onmessage`-only clients.

    An event is made from its `data` (appended here) or from its stored `text` (read back from a
    log). Either is derived from the other only when asked for: the SSE encoder sends `text` as
    stored, so a replay never decodes a `payload=base64` result; `data` decodes it for the few
    callers that need the values.
    """

    __slots__ = ("id", "type", "_data", "_text")

    def __init__(
        self, id: int, type: str, data: dict[str, Any] | None = None, *, text: EventText | None = None
    ) -> None:
        if data is None and text is None:
            raise ValueError("an event needs its data or its stored text")
        self.id = id
        self.type = type
        self._data = data
        self._text = text

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._text is not None
            self._data = self._text.decode()
        return self._data

    @property
    def text(self) -> EventText:
        if self._text is None:
            self._text = EventText(dumps(self._data).encode())
        return self._text

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    def __repr__(self) -> str:
        return f"Event(id={self.id}, type={self.type!r})"


def within_budget(events: list[Event], budget: int = PAGE_BYTES) -> list[Event]:
    """The first events of a page whose stored rows fit in `budget` bytes (always at least one)."""
    used = 0
    for index, event in enumerate(events):
        used += len(event.text.skeleton)
        if used > budget and index:
            return events[:index]
    return events


def _start_of_follow(after: int, last_id: int) -> int:
    """Where a follower at cursor `after` starts reading when the log ends at `last_id`: at its
    cursor, or, when the cursor is at or beyond the end, just before the last event, so that a
    terminal event already logged is seen (`_unseen` decides whether it is sent)."""
    return max(0, min(after, last_id - 1))


def _unseen(events: list[Event], after: int) -> tuple[list[Event], bool]:
    """What a reader at cursor `after` gets of `events` (read in order), and whether the terminal
    event was among them (nothing after it is ever sent, and the follow ends there).

    Every event past the cursor; and the terminal event also when the cursor is beyond it, that
    is beyond the log: a `Last-Event-ID` from another log or a made-up number would otherwise
    wait for ids that never come and keep its connection open after the job's end. A reader
    whose cursor is the terminal event itself already has it.
    """
    for index, event in enumerate(events):
        if event.terminal:
            last = [event] if event.id != after else []
            return [e for e in events[:index] if e.id > after] + last, True
    return [e for e in events if e.id > after], False


async def follow_pages(
    after: int, last_id: int, next_page: Callable[[int], Awaitable[list[Event]]]
) -> AsyncGenerator[list[Event], None]:
    """A follow of a log that ends at `last_id` now, for a reader at cursor `after`: batches of
    the events it has not seen, until (and including) the terminal event.

    `next_page(cursor)` is the log's own read: it waits until there is at least one event with
    id > cursor and returns a page of them, in order. Every event log follows with this one loop,
    so a cursor beyond the log ends the same way on every backend.
    """
    cursor = _start_of_follow(after, last_id)
    while True:
        events = await next_page(cursor)
        cursor = events[-1].id
        batch, finished = _unseen(events, after)
        if batch:
            yield batch
        if finished:
            return


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
        self._store.append_event(job_id, event_id, type_, *split(event.data))
        if event.terminal:
            self._next_id.pop(job_id, None)
        else:
            self._next_id[job_id] = event_id + 1
        wakeup = self._wakeups.pop(job_id, None)
        if wakeup is not None:
            wakeup.set()
        return event

    def read(self, job_id: str, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events with id > `after`; with `limit`, one page: at most that many, within PAGE_BYTES."""
        events = [self._event(row) for row in self._store.events(job_id, after, limit)]
        return events if limit is None else within_budget(events)

    def last(self, job_id: str) -> Event | None:
        row = self._store.last_event(job_id)
        return None if row is None else self._event(row)

    def _event(self, row: StoredEvent) -> Event:
        parts = tuple(Part(at, size, partial(self._store.read_part, key)) for at, size, key in row.parts)
        return Event(row.id, row.type, text=EventText(row.skeleton, parts))

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Yield batches of events with id > `after`, live, until (and including) the terminal one.

        Batches, not single events: a reader that joins late (or a replay) gets what is already
        logged in pages (PAGE_EVENTS, PAGE_BYTES), each of which a stream sends in one write, or
        in chunks where an event is long (api/streams.encode). A cursor beyond the log
        still ends with the terminal event (`follow_pages`).
        """

        async def next_page(cursor: int) -> list[Event]:
            while True:
                # Take the wake-up before reading: no await separates the two, so no append can
                # fall between the read and the wait.
                wakeup = self._wakeups.setdefault(job_id, asyncio.Event())
                if events := self.read(job_id, cursor, PAGE_EVENTS):
                    return events
                await wakeup.wait()

        async with aclosing(follow_pages(after, self._store.last_event_id(job_id), next_page)) as batches:
            async for batch in batches:
                yield batch

    def forget(self, job_id: str) -> None:
        """Drop an expired job's events (its row stays so the API can answer 410)."""
        self._store.delete_events(job_id)
        self._next_id.pop(job_id, None)
