"""Typed job events, as the server's event protocol (docs/server.md, musicsep.protocol) defines them.

One dataclass per type of `musicsep.protocol.EVENT_TYPES`; the terminal set is the protocol's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from musicsep.clients.sse import SSEMessage
from musicsep.protocol import TERMINAL_EVENTS


@dataclass(frozen=True)
class Event:
    """Any event; `id` is its place in the job's log (1, 2, 3 …), `raw` the JSON as sent."""

    id: int
    type: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


@dataclass(frozen=True)
class Queued(Event):
    position: int = 0


@dataclass(frozen=True)
class Started(Event):
    model: str = ""
    device: str = ""
    stems: list[str] = field(default_factory=list)
    duration_s: float | None = None


@dataclass(frozen=True)
class Progress(Event):
    stage: str = ""
    percent: float = 0.0
    chunk: int = 0
    chunks: int = 0
    eta_s: float | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Analysis(Event):
    pass


@dataclass(frozen=True)
class Stem(Event):
    name: str = ""
    url: str = ""
    format: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class Completed(Event):
    stems: dict[str, dict[str, Any]] = field(default_factory=dict)
    analysis: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Event):
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Cancelled(Event):
    reason: str = ""


_TYPES: dict[str, type[Event]] = {
    "queued": Queued,
    "started": Started,
    "progress": Progress,
    "analysis": Analysis,
    "stem": Stem,
    "completed": Completed,
    "failed": Failed,
    "cancelled": Cancelled,
}


def parse_event(message: SSEMessage) -> Event:
    """SSE message → typed event; fields the server adds later are kept in `raw`, not refused."""
    raw = json.loads(message.data)
    kind = _TYPES.get(message.event, Event)
    known = {name for name in kind.__dataclass_fields__ if name not in ("id", "type", "raw")}
    fields = {name: value for name, value in raw.items() if name in known}
    return kind(id=int(message.id or 0), type=message.event, raw=raw, **fields)
