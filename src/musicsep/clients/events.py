"""Typed job events, as the server's event protocol (docs/server.md, musicsep.protocol) defines them.

One dataclass per type of `musicsep.protocol.EVENT_TYPES`; the terminal set is the protocol's.
Each carries the fields its type sends (service/pipeline.py, finishing.py and the queues emit
them); a field an older server does not send keeps its default, and fields a newer one adds are
in `raw`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from musicsep.clients.analysis import Key, Loudness, Tempo, TrackAnalysis, sections
from musicsep.clients.common import known_fields
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

    @classmethod
    def typed_fields(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """This type's fields out of the event's JSON (nested objects typed where the type says)."""
        fields = known_fields(cls, raw)
        fields.pop("id", None)
        fields.pop("type", None)
        return fields


@dataclass(frozen=True)
class Queued(Event):
    """`position` 1 is next, 0 took a slot at once; `reason` says why a job was queued again
    (a server restart)."""

    position: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Started(Event):
    """The separation began: `model` is what runs, `requested_model` what the job asked for; when
    they differ `fallback_reason` says why (no weights on this server, a model it lacks).
    `duration_s` is the file header's claim."""

    model: str = ""
    requested_model: str | None = None
    fallback_reason: str | None = None
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
    #: Frames (and seconds) of every stem final and readable live (`Client.stream_stem`).
    ready_frames: int = 0
    ready_s: float = 0.0


@dataclass(frozen=True)
class Analysis(Event):
    """The track's analysis (musicsep's `AnalysisResult`): duration, tempo and beats, key, loudness."""

    duration_s: float | None = None
    tempo: Tempo = field(default_factory=Tempo)
    key: Key = field(default_factory=Key)
    loudness: Loudness = field(default_factory=Loudness)

    @classmethod
    def typed_fields(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        return sections(raw)


@dataclass(frozen=True)
class Stem(Event):
    name: str = ""
    url: str = ""
    format: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class Completed(Event):
    """`stems` maps each stem to `{url, format, bytes}` (`data` instead of `url` with
    payload=base64); `model` is the model that ran."""

    stems: dict[str, dict[str, Any]] = field(default_factory=dict)
    analysis: TrackAnalysis | None = None
    timings: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    fallback_reason: str | None = None

    @classmethod
    def typed_fields(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        fields = super().typed_fields(raw)
        analysis = fields.get("analysis")
        fields["analysis"] = TrackAnalysis.from_json(analysis) if isinstance(analysis, Mapping) else None
        fields["timings"] = fields.get("timings") or {}
        return fields


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
    return kind(id=int(message.id or 0), type=message.event, raw=raw, **kind.typed_fields(raw))
