"""The track analysis as clients read it: typed sections of the server's `AnalysisResult`.

Written here rather than imported because the server's model (musicsep.model.analysis.schema)
belongs to the model layer, which a clients-only install does not have. The shape is the one
docs/analysis.md pins: each section always present; a figure that cannot be given is None and its
section's `reason` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from musicsep.clients.common import known_fields


@dataclass(frozen=True)
class Tempo:
    bpm: float | None = None
    confidence: float | None = None
    beats: list[float] = field(default_factory=list)
    reason: str | None = None


@dataclass(frozen=True)
class Key:
    """`label` is tonic and mode ("A minor"); `tonic` a pitch class, sharps only."""

    label: str | None = None
    tonic: str | None = None
    mode: str | None = None
    confidence: float | None = None
    runner_up: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness (ITU-R BS.1770) and sample peak."""

    lufs: float | None = None
    peak_dbfs: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TrackAnalysis:
    """Duration, tempo, key and loudness of one track; `raw` is the JSON as sent."""

    duration_s: float | None = None
    tempo: Tempo = field(default_factory=Tempo)
    key: Key = field(default_factory=Key)
    loudness: Loudness = field(default_factory=Loudness)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TrackAnalysis:
        return cls(raw=dict(raw), **sections(raw))


def sections(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The typed fields of an analysis object (sections the server left out get their defaults;
    fields it adds later stay in the caller's `raw`)."""
    typed: dict[str, Any] = {"duration_s": raw.get("duration_s")}
    for name, kind in (("tempo", Tempo), ("key", Key), ("loudness", Loudness)):
        section = raw.get(name)
        typed[name] = kind(**known_fields(kind, section)) if isinstance(section, Mapping) else kind()
    return typed
