"""SSE framing of a job's event log (DESIGN §5), with sse-starlette doing the wire work.

The first message is a bare `retry:` line, so a watcher gets its first byte at once even when the
job has nothing new to say; then every logged event goes out as `id:`, `event:` and `data:` (the
JSON carrying `"event"` too). The stream ends after the terminal event. Keep-alive comments come
from sse-starlette's ping task, its disconnect listener stops the stream when the client leaves.
"""

from __future__ import annotations

import json

import anyio.lowlevel
from typing import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent

from musicsep.service.events import Event

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(batch: list[Event]) -> bytes:
    """Several events as one chunk: one write per batch instead of one per event."""
    return b"".join(
        ServerSentEvent(
            data=json.dumps(event.data, separators=(",", ":"), ensure_ascii=False),
            event=event.type,
            id=str(event.id),
        ).encode()
        for event in batch
    )


def event_stream(
    batches: AsyncIterator[list[Event]],
    *,
    retry_ms: int,
    ping_s: float,
    on_unfinished: Callable[[], None] | None = None,
) -> EventSourceResponse:
    """Stream `events`; `on_unfinished` runs if the stream stops before a terminal event
    (the client went away): the POST /separate route cancels its job there."""

    async def frames() -> AsyncIterator[ServerSentEvent | bytes]:
        finished = False
        try:
            yield ServerSentEvent(retry=retry_ms)
            # Let other streams that are opening send their first byte before this one replays.
            await anyio.lowlevel.checkpoint()
            async for batch in batches:
                yield encode(batch)
                finished = batch[-1].terminal
        finally:
            if not finished and on_unfinished is not None:
                on_unfinished()

    return EventSourceResponse(frames(), headers=SSE_HEADERS, ping=ping_s)
