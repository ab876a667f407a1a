"""The engine's live tap: each stem's finished samples handed out as they leave the engine.

The streaming engines emit a block as soon as no later chunk can change it (docs/architecture.md,
"Engine"), so the samples a block carries are already the stem's final values, except for the
clip mode: `rescale` divides the whole stem by its peak, known only at the end, so live samples
are the unscaled ones; `clamp` is applied here as the writer applies it. What is done with the
blocks (a spool on disk, segments in a bucket) is the service's: the model only knows a sink.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

# The writer's own limit, so that clamped live samples equal a clamped float32 file exactly.
from musicsep.model.audio.encode import CLAMP_LIMIT

#: What the live samples are relative to the final file, by clip mode.
LIVE_LEVELS = {"none": "final", "clamp": "clamped", "rescale": "unscaled"}


class LiveSink(Protocol):
    """Receives a job's finished samples, in order, from the engine's thread."""

    def begin(self, samplerate: int, channels: int, stems: list[str], frames: int) -> None:
        """Before the first block: the stems' rate and channels, their names, the track's frames."""

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        """The next finished frames of every stem: `(channels, n)` float32, the same n for all."""

    def end(self) -> None:
        """Every frame of the track has been written."""


def live_level(clip: str) -> str:
    """`final`, `clamped` or `unscaled`: how the live samples relate to the final file."""
    return LIVE_LEVELS[clip]


class LiveTap:
    """Passes the engine's blocks to a sink at the level of `clip` (the writer's clamp applied)."""

    def __init__(self, sink: LiveSink, clip: str) -> None:
        self._sink = sink
        self._clamp = clip == "clamp"

    def begin(self, samplerate: int, channels: int, stems: list[str], frames: int) -> None:
        self._sink.begin(samplerate, channels, stems, frames)

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        if self._clamp:
            blocks = {name: np.clip(block, -CLAMP_LIMIT, CLAMP_LIMIT) for name, block in blocks.items()}
        self._sink.write(blocks)

    def end(self) -> None:
        self._sink.end()
