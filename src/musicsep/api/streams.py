"""SSE framing of a job's event log (DESIGN §5), with sse-starlette doing the wire work.

The first message is a bare `retry:` line, so a watcher gets its first byte at once even when the
job has nothing new to say; then every logged event goes out as `id:`, `event:` and `data:` (the
JSON carrying `"event"` too). The stream ends after the terminal event. Keep-alive comments come
from sse-starlette's ping task, its disconnect listener stops the stream when the client leaves.

A stream also ends early, cleanly, with a `retry:` and an SSE comment saying why, in three cases:
its maximum lifetime is reached, the server is shutting down (SIGTERM; sse-starlette's shutdown
event), or the event log cannot be read (Redis gone in scale-out). A comment is what every SSE
client ignores by the spec, so none can take it for a log event or a terminal one; EventSource
and musicsep.clients then reconnect with `Last-Event-ID` and lose nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import anyio.lowlevel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from musicsep.api.errors import ApiError
from musicsep.api.stream_slots import Slot
from musicsep.service.admission import ServiceUnavailable
from musicsep.service.event_text import CHUNK_BYTES
from musicsep.service.events import Event

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Stands for an event's data while sse-starlette frames it (ids are digits, types are words).
_DATA = "\x00"


def encode(batch: list[Event], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """A batch's SSE frames as writes of about `chunk_bytes`: small events share one write (one
    per batch, not one per event); a long one (a `payload=base64` result) goes out a chunk at a
    time, read from the log as the client takes it. Each write waits for the connection to drain,
    so a reader that stalls holds one chunk of the server's memory, not the event or the log.

    The data is the event's stored text as it is (service/event_text.py), so the bytes are those
    `ServerSentEvent(data=json.dumps(data, separators=(",", ":"), ensure_ascii=False))` gives:
    compact JSON has no line break, so it is always one `data:` line, and sse-starlette frames
    the rest around it.
    """
    pending = bytearray()
    for event in batch:
        frame = ServerSentEvent(data=_DATA, event=event.type, id=str(event.id)).encode()
        head, tail = frame.split(_DATA.encode())
        pending += head
        for piece in event.text.chunks(chunk_bytes):
            if pending and len(pending) + len(piece) > chunk_bytes:
                yield bytes(pending)
                pending.clear()
            if len(piece) == chunk_bytes:
                yield piece  # a whole chunk of a long string: as read, no copy
            else:
                pending += piece
        pending += tail
    if pending:
        yield bytes(pending)


#: A `Last-Event-ID` is an id this server sent: ASCII digits only (`str.isdigit` also takes "²",
#: which `int` refuses), at most 18 of them, so it fits SQLite's and Redis's 64-bit ids.
_EVENT_ID = re.compile(r"[0-9]{1,18}")

#: Seconds sse-starlette lets a stream write its farewell after SIGTERM before cancelling it;
#: well under uvicorn's timeout_graceful_shutdown (10 s in uvicorn_config.json).
SHUTDOWN_GRACE_S = 2.0

LIFETIME = "closing: this stream reached its maximum lifetime; reconnect with Last-Event-ID"
SHUTDOWN = "closing: the server is shutting down; reconnect with Last-Event-ID"
UNAVAILABLE = "error events_unavailable: the event log cannot be reached right now; reconnect with Last-Event-ID"


def parse_last_event_id(value: str | None) -> int:
    """The cursor of a `Last-Event-ID` header; absent or empty is 0 (the whole log).

    Anything else that is not one of our ids is a 400, not a guess: EventSource only ever sends
    back an id it was sent, so garbage comes from a broken or hostile client, and replaying the
    whole log to it (what "treat as absent" would do) would show a real client everything twice.
    """
    if not value:
        return 0
    if _EVENT_ID.fullmatch(value) is None:
        raise ApiError(
            400, "invalid_last_event_id", "Last-Event-ID must be an event id this server sent (1 to 18 ASCII digits)"
        )
    return int(value)


class _Ending:
    """Why a stream stops before its terminal event, and the one wait that stopping interrupts.

    The wait for the next batch runs in a cancel scope with the lifetime as its deadline; a
    shutdown cancels it. Nothing is yielded inside the scope, so a cancellation can only ever
    land in that wait (never in a send of sse-starlette's).
    """

    def __init__(self, lifetime_s: float | None) -> None:
        self.deadline = anyio.current_time() + lifetime_s if lifetime_s else math.inf
        self.reason: str | None = None
        #: The log had nothing more for this reader (its cursor was the terminal event itself).
        self.exhausted = False
        self._waiting: anyio.CancelScope | None = None

    def close(self, reason: str) -> None:
        self.reason = self.reason or reason
        if self._waiting is not None:
            self._waiting.cancel()

    async def next_batch(self, batches: AsyncIterator[list[Event]]) -> list[Event] | None:
        """The next batch, or None when there is none (`exhausted`) or the stream must end first
        (`reason` says why)."""
        if self.reason is None:
            with anyio.CancelScope(deadline=self.deadline) as self._waiting:
                try:
                    return await anext(batches)
                except StopAsyncIteration:
                    self.exhausted = True
                    return None
                except ServiceUnavailable:
                    self.reason = UNAVAILABLE
                finally:
                    self._waiting = None
            self.reason = self.reason or LIFETIME
        return None


class _SlottedResponse(EventSourceResponse):
    """Gives the stream's slot back however the response ends, also when its body never started."""

    def __init__(self, *args, slot: Slot | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._slot is not None:
                self._slot.release()


def event_stream(
    batches: AsyncIterator[list[Event]],
    *,
    retry_ms: int,
    ping_s: float,
    on_unfinished: Callable[[], None] | None = None,
    lifetime_s: float | None = None,
    slot: Slot | None = None,
) -> EventSourceResponse:
    """Stream `batches`; `on_unfinished` runs if the client went away before a terminal event
    (the POST /separate route cancels its job there), not when the server closed the stream.
    `lifetime_s`: close (with `retry:`) after that long; `slot`: released when the stream ends."""
    ending = _Ending(lifetime_s)
    shutdown = anyio.Event()

    async def close_on_shutdown() -> None:
        # Run by sse-starlette in the response's task group (its `data_sender_callable` hook),
        # so it ends with the response; it only turns the library's shutdown event into a close.
        await shutdown.wait()
        ending.close(SHUTDOWN)

    async def frames() -> AsyncIterator[ServerSentEvent | bytes]:
        finished = False
        try:
            yield ServerSentEvent(retry=retry_ms)
            # Let other streams that are opening send their first byte before this one replays.
            await anyio.lowlevel.checkpoint()
            while not finished and (batch := await ending.next_batch(batches)) is not None:
                # A long event goes out in several writes: hold the lock sse-starlette's ping task
                # takes (private, the same since 2.0), so no ping lands inside a `data:` line.
                async with response._send_lock:
                    for chunk in encode(batch):
                        yield chunk
                finished = batch[-1].terminal
            finished = finished or ending.exhausted
            if not finished:
                yield ServerSentEvent(comment=ending.reason, retry=retry_ms)
        finally:
            if not finished and ending.reason is None and on_unfinished is not None:
                on_unfinished()

    response = _SlottedResponse(
        frames(),
        headers=SSE_HEADERS,
        ping=ping_s,
        slot=slot,
        data_sender_callable=close_on_shutdown,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )
    return response
