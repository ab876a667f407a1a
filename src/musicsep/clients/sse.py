"""An incremental Server-Sent Events parser (the WHATWG "event stream interpretation").

Written here, not taken from `httpx-sse` or `aiohttp-sse-client`, because both clients must share
one parser and each of those libraries is tied to its own transport. Feed it text as it
arrives, in any chunking; it returns the messages completed so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEMessage:
    event: str
    data: str
    id: str | None
    retry: int | None


class SSEParser:
    def __init__(self) -> None:
        self._pending = ""
        #: How much of `_pending` holds no line end: a long line (a `payload=base64` result is
        #: megabytes) is then searched once, not again from its start at every chunk.
        self._scanned = 0
        #: A chunk ended in "\r": a "\n" starting the next chunk belongs to that line end.
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        #: The last id seen (persists across messages, as the spec's "last event ID buffer").
        self.last_id: str | None = None
        #: The server's `retry:` in milliseconds, when it sent one.
        self.retry_ms: int | None = None

    def feed(self, text: str) -> list[SSEMessage]:
        if self._skip_lf and text:
            text = text[1:] if text.startswith("\n") else text
            self._skip_lf = False
        self._pending += text
        messages: list[SSEMessage] = []
        while True:
            cut = _LINE_END.search(self._pending, self._scanned)
            if cut is None:
                self._scanned = len(self._pending)
                return messages
            end, width = cut.start(), len(cut.group())
            self._skip_lf = end + width == len(self._pending) and self._pending[end] == "\r"
            line, self._pending = self._pending[:end], self._pending[end + width :]
            self._scanned = 0
            message = self._line(line)
            if message is not None:
                messages.append(message)

    def _line(self, line: str) -> SSEMessage | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEMessage | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return SSEMessage(event=event or "message", data="\n".join(data), id=self.last_id, retry=retry)
