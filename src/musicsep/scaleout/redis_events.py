"""The event log on Redis Streams: one stream per job, same methods as the embedded `EventLog`.

Any process may append (the API appends `queued` and `cancelled`, a worker the rest) and any API
node may follow, so a browser that reconnects to another node with `Last-Event-ID` continues
where it was. Event id n is stored as stream entry id `n-0`: `Last-Event-ID: n` is then exactly
the `XREAD` position, and Redis itself refuses an entry id that is not larger than the last one.

Ids are taken and the entry added in one Lua script (atomic on the server), so two processes
appending at once still get 1, 2, 3 … without gaps or repeats. Streams are capped (`XADD MAXLEN
~ cap`): a job's log is a few hundred entries, the cap only guards Redis against a runaway job;
a reader replaying from before the trimmed part gets what is left.

An entry holds the event's stored text (service/event_text.py): the skeleton in `data`, and when
the event has long strings (a `payload=base64` result), their offsets and sizes in `parts`, each
string in a key of its own, read back with GETRANGE one chunk at a time. Replays page with COUNT.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import partial
from typing import Any

import anyio
import redis
import redis.asyncio

from musicsep.scaleout.redis_store import DEFAULT_PREFIX, StoreUnavailable, reachable
from musicsep.service.event_text import EventText, Part, split
from musicsep.service.events import PAGE_EVENTS, Event, follow_pages, within_budget

# KEYS: stream, counter, set of part keys. ARGV: type, skeleton, cap, parts' places (JSON), then
# each part's text. Returns the new event id. Part keys are named after the id the script takes,
# so it builds them itself (a standalone Redis, as everywhere in this module); the set lets
# `forget` find them.
_APPEND = """
local n = redis.call('INCR', KEYS[2])
if #ARGV > 4 then
    for i = 5, #ARGV do
        local key = KEYS[1] .. ':part:' .. n .. ':' .. (i - 5)
        redis.call('SET', key, ARGV[i])
        redis.call('SADD', KEYS[3], key)
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], n .. '-0', 'type', ARGV[1], 'data', ARGV[2],
               'parts', ARGV[4])
else
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], n .. '-0', 'type', ARGV[1], 'data', ARGV[2])
end
return n
"""

DEFAULT_CAP = 20_000
#: How long one XREAD waits before looping; bounds how long a dropped connection goes unnoticed.
_BLOCK_MS = 5_000
#: Longest wait for a follower's connection to close (a dead Redis must not hold a stream open).
_CLOSE_TIMEOUT_S = 5.0


class RedisEventLog:
    """Append-only, replayable, followable per-job log on Redis Streams."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, cap: int = DEFAULT_CAP) -> None:
        self._url = url
        self._p = prefix
        self._cap = cap
        self._r = redis.Redis.from_url(url)
        self._append = self._r.register_script(_APPEND)

    def close(self) -> None:
        self._r.close()

    def _stream(self, job_id: str) -> str:
        return f"{self._p}events:{job_id}"

    def _counter(self, job_id: str) -> str:
        return f"{self._p}events:{job_id}:last"

    def _part_keys(self, job_id: str) -> str:
        return f"{self._p}events:{job_id}:parts"

    def append(self, job_id: str, type_: str, payload: dict[str, Any]) -> Event:
        data = {"event": type_, **payload}
        skeleton, parts = split(data)
        places = json.dumps([[at, len(text)] for at, text in parts])
        event_id = int(
            self._append(
                keys=[self._stream(job_id), self._counter(job_id), self._part_keys(job_id)],
                args=[type_, skeleton, self._cap, places, *(text for _, text in parts)],
            )
        )
        return Event(event_id, type_, data)

    @reachable
    def read(self, job_id: str, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events with id > `after`; with `limit`, one page: at most that many, within PAGE_BYTES."""
        entries = self._r.xrange(self._stream(job_id), min=f"{after + 1}-0", count=limit)
        events = [self._event(job_id, entry_id, fields) for entry_id, fields in entries]
        return events if limit is None else within_budget(events)

    @reachable
    def last(self, job_id: str) -> Event | None:
        entries = self._r.xrevrange(self._stream(job_id), count=1)
        return self._event(job_id, *entries[0]) if entries else None

    def _event(self, job_id: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
        """An entry as an Event whose long strings stay in Redis until a reader takes them."""
        event_id = int(entry_id.split(b"-", 1)[0])
        stream = self._stream(job_id)
        parts = tuple(
            Part(at, size, partial(self._read_part, f"{stream}:part:{event_id}:{index}"))
            for index, (at, size) in enumerate(json.loads(fields.get(b"parts", b"[]")))
        )
        return Event(event_id, fields[b"type"].decode(), text=EventText(fields[b"data"], parts))

    @reachable
    def _read_part(self, key: str, start: int, size: int) -> bytes:
        return self._r.getrange(key, start, start + size - 1)

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Yield batches of events with id > `after`, live, until (and including) the terminal one.

        XREAD returns what the stream already holds past the cursor at once, so a replay and the
        live tail are the same call. A cursor beyond the log reads from the log's end and still
        ends with the terminal event (`follow_pages`). A client per follower: redis.asyncio clients
        belong to one event loop, and a blocked XREAD holds its connection anyway. Redis going
        away raises StoreUnavailable, which the stream turns into a clean close the client
        resumes from.
        """
        # redis-py's asyncio client times reads out after 5 s by default, the same as the BLOCK:
        # an idle job (no event for 5 s) would then end its watchers' streams with an error.
        client = redis.asyncio.Redis.from_url(self._url, socket_timeout=_BLOCK_MS / 1000 + 5)
        stream = self._stream(job_id)

        async def next_page(cursor: int) -> list[Event]:
            reply = None
            while not reply:  # a block that ends with nothing new blocks again
                reply = await client.xread({stream: f"{cursor}-0"}, block=_BLOCK_MS, count=PAGE_EVENTS)
            return within_budget([self._event(job_id, *entry) for entry in reply[0][1]])

        try:
            last_id = int(await client.get(self._counter(job_id)) or 0)
            async with aclosing(follow_pages(after, last_id, next_page)) as batches:
                async for batch in batches:
                    yield batch
        except (redis.ConnectionError, redis.TimeoutError):
            raise StoreUnavailable() from None
        finally:
            # Shielded and bounded: a follower is often closed by a cancellation (the client left,
            # the stream's lifetime ended), which would otherwise cut this close short and leave
            # the connection open.
            with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                await client.aclose()

    def forget(self, job_id: str) -> None:
        """Drop an expired job's events and their parts (its record stays so the API can answer 410)."""
        parts = self._r.smembers(self._part_keys(job_id))
        self._r.delete(self._stream(job_id), self._counter(job_id), self._part_keys(job_id), *parts)
