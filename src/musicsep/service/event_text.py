"""How an event's data is stored, so that a replay sends it without decoding it.

A `payload=base64` job's `completed` event carries every stem as base64: megabytes in one event.
Stored as one JSON row, every reader of the log loaded, decoded and re-encoded all of it, and a
reader that stalled kept the whole frame in its connection's buffer (40 such readers took a
server from 806 MB to 2,017 MB).

So an event is stored as the exact text the wire carries (`json.dumps(data, separators=(",",
":"), ensure_ascii=False)`, what the SSE encoder always sent), cut in two:

- the row keeps a small *skeleton*: that text with every long string emptied to `""`;
- each long string's JSON-escaped text is stored once beside the row as a *part*, with the byte
  offset in the skeleton it goes back to (just inside its quotes).

Splicing the parts back at their offsets gives the original text byte for byte, because JSON
escapes a string the same way wherever it stands. A replay copies the skeleton and reads each
part from the store one chunk at a time as the client takes it: nothing is decoded, and a
reader's memory is one chunk, not the log. Parts live in the store rather than being produced
from the stem files per request, so the bytes cannot change under a reader, the same code serves
the SQLite and Redis logs, and an API node without the files (S3 storage) replays them too.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: Strings at least this long (in characters) are stored as parts, outside the event's row.
LONG_STRING_CHARS = 16 * 1024
#: How much of an event a replay reads from the store and hands to the connection at a time.
CHUNK_BYTES = 64 * 1024

#: Reads `size` bytes of one stored part from `start`.
ReadPart = Callable[[int, int], bytes]


def dumps(value: Any) -> str:
    """The wire form of an event's data (DESIGN §5): compact, UTF-8 kept as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Part:
    """A long string of an event, stored beside its row: `size` bytes that go at skeleton offset `at`."""

    at: int
    size: int
    read: ReadPart


@dataclass(frozen=True)
class EventText:
    """An event's wire JSON as stored: the skeleton, and the parts to splice back into it."""

    skeleton: bytes
    parts: tuple[Part, ...] = ()

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The text in pieces of at most `size` bytes; parts are read from the store as they go."""
        done = 0
        for part in self.parts:
            yield from _slices(self.skeleton, done, part.at, size)
            for start in range(0, part.size, size):
                yield part.read(start, min(size, part.size - start))
            done = part.at
        yield from _slices(self.skeleton, done, len(self.skeleton), size)

    def decode(self) -> dict[str, Any]:
        """The data as a dict: reads and decodes everything, for the callers that need the values."""
        return json.loads(b"".join(self.chunks()))


def split(data: dict[str, Any]) -> tuple[bytes, list[tuple[int, bytes]]]:
    """`data` as its wire text, long strings cut out: (skeleton, [(offset, escaped string), …]).

    Each long string is swapped for a placeholder that names it with a random nonce, the whole is
    dumped once, and the placeholders are then found and emptied; the nonce is drawn after the
    data exists, so no value of it can contain a placeholder by design.
    """
    nonce = secrets.token_hex(16)
    long: list[str] = []

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) >= LONG_STRING_CHARS:
            long.append(value)
            return f"{nonce}:{len(long) - 1}"
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [cut(item) for item in value]
        return value

    text = dumps(cut(data)).encode()
    if not long:
        return text, []
    pieces: list[bytes] = []
    parts: list[tuple[int, bytes]] = []
    size = done = 0
    for match in re.finditer(rb'"' + nonce.encode() + rb':(\d+)"', text):
        pieces.append(text[done : match.start() + 1])
        size += match.start() + 1 - done
        parts.append((size, dumps(long[int(match.group(1))])[1:-1].encode()))
        done = match.end() - 1
    pieces.append(text[done:])
    return b"".join(pieces), parts


def _slices(text: bytes, start: int, end: int, size: int) -> Iterator[bytes]:
    for offset in range(start, end, size):
        yield text[offset : min(offset + size, end)]
