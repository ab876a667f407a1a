"""The analysis result: one pydantic model that the CLI prints, the server sends in its `analysis`
and `completed` events, and the clients read back.

Pinned by the analysis issue (other tools read it):
`{"duration_s", "tempo": {"bpm", "confidence", "beats"}, "key": {"label", "tonic", "mode",
"confidence", "runner_up"}, "loudness": {"lufs", "peak_dbfs"}}`; fields added since keep those
meaning what they meant (`key.name`: the key spelled as musicians write it, next to the
sharps-only `label`; `tempo.alternatives`). Where a figure cannot be given
(silence, noise, a clip too short to hold a tempo) it is `null` and the section's `reason` says
why, so a reader never mistakes a guess for a measurement. Each section is always present.

This module imports only pydantic so that anything may import it cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

#: Each tonic as musicians write the key, per mode: the spelling whose key signature has the
#: fewer accidentals (Db major's 5 flats, not C# major's 7 sharps; G# minor's 5 sharps, not Ab
#: minor's 7 flats). The ties go to the usual spelling: F# major (6 sharps, as often as Gb) and
#: Eb minor (6 flats, the spelling of chord charts; D# minor has 6 sharps).
SPELLED_TONICS: dict[str, tuple[str, ...]] = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}

Mode = Literal["major", "minor"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TempoAlternative(_Section):
    """Another reading of the same pulse: half or double the tempo, or its 2/3 or 3/2 (a beat
    heard in three against two)."""

    bpm: float
    relation: Literal["half", "double", "two_thirds", "three_halves"]
    score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="How much of the periodicity evidence this reading shares with the chosen tempo "
        "(1: as much; its autocorrelation peak relative to the chosen one's).",
    )


class Tempo(_Section):
    """Tempo in beats per minute and the beat times it was tracked with."""

    bpm: float | None = Field(None, description="Beats per minute; null when no steady pulse.")
    confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Periodicity strength of the onset envelope at the beat."
    )
    beats: list[float] = Field(default_factory=list, description="Beat times in seconds.")
    reason: str | None = Field(None, description="Why bpm is null; null when it is given.")
    alternatives: list[TempoAlternative] = Field(
        default_factory=list,
        description="When the confidence is low (below 0.5): the other readings of the pulse (half, "
        "double, 2/3, 3/2) with their scores, best first, for a person to choose from; empty otherwise.",
    )


class Key(_Section):
    """Musical key: tonic and mode, how clearly it won, and the key that came second."""

    label: str | None = Field(None, description='Tonic and mode, e.g. "A minor".')
    tonic: str | None = Field(None, description="Pitch class of the tonic, sharps only: C, C#, ...")
    mode: Mode | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    runner_up: str | None = Field(None, description="Label of the second-best key.")
    reason: str | None = Field(None, description="Why the key is null; null when it is given.")
    name: str | None = Field(None, description='The key as musicians write it: "Bb major", "F# minor".')
    tonic_name: str | None = Field(None, description="The tonic as `name` spells it: Bb, F#, Eb ...")
    runner_up_name: str | None = Field(None, description="The second-best key as musicians write it.")


class Loudness(_Section):
    """ITU-R BS.1770 integrated loudness and sample peak."""

    lufs: float | None = Field(None, description="Integrated loudness, LUFS (BS.1770-4).")
    peak_dbfs: float | None = Field(None, description="Sample peak, dB relative to full scale.")
    reason: str | None = Field(None, description="Why a figure is null; null when both are given.")


def spelled_key(label: str | None) -> tuple[str, str] | None:
    """("Bb major", "Bb") for a sharps-only label ("A# major"); None for None."""
    if label is None:
        return None
    tonic, mode = label.split(" ", 1)
    spelled = SPELLED_TONICS[mode][PITCH_CLASSES.index(tonic)]
    return f"{spelled} {mode}", spelled


class AnalysisResult(_Section):
    """Tempo, key, loudness and exact duration of one track."""

    duration_s: float = Field(..., ge=0.0, description="Exact, from the decoded sample count.")
    tempo: Tempo
    key: Key
    loudness: Loudness
