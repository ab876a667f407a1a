"""The event log on Redis Streams: one stream per job, same methods as the embedded `EventLog`.

Any process may append (the API appends `queued` and `cancelled`, a worker the rest) and any API
node may follow, so a browser that reconnects to another node with `Last-Event-ID` continues
where it was. Event id n is stored as stream entry id `n-0`: `Last-Event-ID: n` is then exactly
the `XREAD` position, and Redis itself refuses an entry id that is not larger than the last one.

Ids are taken and the entry added in one Lua script (atomic on the server), so two processes
appending at once still get 1, 2, 3 … without gaps or repeats. Streams are capped (`XADD MAXLEN
~ cap`): a job's log is a few hundred entries, the cap only guards Redis against a runaway job;
a reader replaying from before the trimmed part gets what is left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio

from musicsep.dist.redis_store import DEFAULT_PREFIX, reachable
from musicsep.service.events import Event

# KEYS: stream, counter. ARGV: type, data (JSON), cap. Returns the new event id.
_APPEND = """
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], n .. '-0', 'type', ARGV[1], 'data', ARGV[2])
return n
"""

DEFAULT_CAP = 20_000
#: How long one XREAD waits before looping; bounds how long a dropped connection goes unnoticed.
_BLOCK_MS = 5_000


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(int(entry_id.split(b"-", 1)[0]), fields[b"type"].decode(), json.loads(fields[b"data"]))


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

    def append(self, job_id: str, type_: str, payload: dict[str, Any]) -> Event:
        data = {"event": type_, **payload}
        text = json.dumps(data, separators=(",", ":"))
        event_id = int(self._append(keys=[self._stream(job_id), self._counter(job_id)], args=[type_, text, self._cap]))
        return Event(event_id, type_, data)

    @reachable
    def read(self, job_id: str, after: int = 0) -> list[Event]:
        entries = self._r.xrange(self._stream(job_id), min=f"{after + 1}-0")
        return [_event(entry_id, fields) for entry_id, fields in entries]

    @reachable
    def last(self, job_id: str) -> Event | None:
        entries = self._r.xrevrange(self._stream(job_id), count=1)
        return _event(*entries[0]) if entries else None

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Yield batches of events with id > `after`, live, until (and including) the terminal one.

        XREAD returns what the stream already holds past `after` at once, so a replay and the
        live tail are the same call. A client per follower: redis.asyncio clients belong to one
        event loop, and a blocked XREAD holds its connection anyway.
        """
        # redis-py's asyncio client times reads out after 5 s by default, the same as the BLOCK:
        # an idle job (no event for 5 s) would then end its watchers' streams with an error.
        client = redis.asyncio.Redis.from_url(self._url, socket_timeout=_BLOCK_MS / 1000 + 5)
        stream = self._stream(job_id)
        try:
            while True:
                reply = await client.xread({stream: f"{after}-0"}, block=_BLOCK_MS)
                if not reply:
                    continue
                events = [_event(entry_id, fields) for entry_id, fields in reply[0][1]]
                for index, event in enumerate(events):
                    if event.terminal:
                        yield events[: index + 1]
                        return
                yield events
                after = events[-1].id
        finally:
            await client.aclose()

    def forget(self, job_id: str) -> None:
        """Drop an expired job's events (its record stays so the API can answer 410)."""
        self._r.delete(self._stream(job_id), self._counter(job_id))
