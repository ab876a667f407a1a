"""Chunk plans for MSST-format models: where a track's chunks go, how each chunk's output is
weighted, and how the weighted sum is divided. The tools that run these checkpoints disagree on
all three, so the rule is chosen per model (the catalog's `chunking`), and each plan here is one
tool's arithmetic, reproduced exactly.

`msst`: ZFTurbo/Music-Source-Separation-Training at commit
ccc011abf7f89dd7922bb2888d48493b575c0289, `utils/model_utils.py` (`demix` in its "generic" mode,
`_getWindowingArray`):

- chunk = `inference.chunk_size` (else `audio.chunk_size`), step = chunk // `num_overlap`,
  border = chunk - step, fade = chunk // 10.
- The whole track is reflect-padded by `border` at both ends (reflection without repeating the
  edge sample), but only when it is longer than `2 * border` and `border > 0`.
- Chunks start at 0, step, 2 step, ... while the start is inside the padded track; none is
  end-aligned. A chunk cut short by the end is padded up to `chunk` by reflecting itself when it
  holds more than chunk // 2 samples, with zeros otherwise; only its first `seg_len` output
  samples are used.
- Each chunk's output is weighted by a window of ones with a linear fade-in
  (`linspace(0, 1, fade)`) and fade-out (`linspace(1, 0, fade)`); the first chunk has no fade-in,
  the last no fade-out (a chunk that is both keeps its fade-out, as the reference's `if/elif`).
- The weighted sum is divided by the summed weights; 0/0 (a sample only zero weights touch, as
  with `num_overlap: 1` at chunk joins) becomes 0 (`nan_to_num`). The padding is cut off.
- The reference picks the first/last-chunk windows per *batch* of chunks, so with
  `inference.batch_size > 1` its output depends on the batch size. Here each chunk gets the window
  the reference gives it with batch size 1, whatever the batch size; the batch size changes speed only.

`uvr`: python-audio-separator 0.47.1 (`mdxc_separator.py`, the RoFormer branch of `demix`), which
is what UVR does for RoFormers too:

- chunk = the STFT hop (`model.stft_hop_length`, else `audio.hop_length`) x (`inference.dim_t` - 1),
  step = chunk // overlap.
- No padding. Chunks start at 0, step, 2 step, ...; at the first start whose chunk reaches the
  end, the last chunk is end-aligned instead (start `frames - chunk`, or 0), unless that start is
  the previous one. A track shorter than one chunk is one chunk of its own length.
- Each chunk's output is weighted by a symmetric Hamming window of `chunk` samples (its first
  `len` samples for a shorter chunk), and the sum is divided by the summed weights (at least 1e-10).
  The networks return whole STFT hops only (no `length` to their inverse STFT), so a chunk not a
  multiple of the hop leaves its last samples unweighted, which come out 0 as in audio-separator.

`uvr` for MDX23C: the same file's other branch of `demix` (audio-separator and UVR run MDX23C
differently from RoFormers):

- chunk = `audio.hop_length` x (`inference.dim_t` - 1), step = chunk // overlap.
- The track is zero-padded by chunk - step in front and by pad + chunk - step behind, where
  pad = step - (frames - chunk) mod step (a whole step when the remainder is 0).
- Chunks start every step from 0 while a whole chunk fits in the padded track (`unfold`).
- No window: the outputs are summed and divided by `overlap`, whatever the number of chunks over
  a sample; the padding is cut off.

Streaming (stream.py) relies on what every plan shares: chunk starts never decrease, so once a
chunk is added, every sample before the next chunk's start is final.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import torch
from scipy.signal import windows

#: The rules a model can be run with (the catalog's `chunking`), and the families they know.
CHUNKING_RULES = ("uvr", "msst")
FAMILIES = ("roformer", "mdx23c")


class FrameReader(Protocol):
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames `[start, stop)` as float32 `(channels, stop - start)`, zeros outside the track."""


@dataclass(frozen=True)
class ChunkPlan(ABC):
    """The chunks of a track of `frames` samples, in the plan's own coordinates: the track's first
    sample is at `pad`, and the plan spans `padded` positions."""

    frames: int
    chunk: int
    step: int

    #: Whether the network must return as many samples as it is given (MSST's `demix` fails
    #: otherwise); when not, samples it does not return weigh 0, as audio-separator counts them.
    exact_output = True

    @property
    @abstractmethod
    def pad(self) -> int: ...

    @property
    def padded(self) -> int:
        return self.frames + 2 * self.pad

    @property
    @abstractmethod
    def offsets(self) -> Sequence[int]:
        """Chunk starts, never decreasing."""

    @abstractmethod
    def read(self, reader: FrameReader, index: int) -> tuple[np.ndarray, int]:
        """The model input of chunk `index`, and how many of its output samples count (from the start)."""

    @abstractmethod
    def window(self, index: int) -> torch.Tensor:
        """The weights of chunk `index` (at least as long as its counted samples)."""

    @abstractmethod
    def divide(self, weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The final samples from the weighted sum of the outputs and the sum of the weights."""


@dataclass(frozen=True)
class MsstChunkPlan(ChunkPlan):
    """MSST's `demix` (the module's docstring)."""

    fade: int
    border_pad: int  # reflect padding at each end of the track (0 when the reference does not pad)

    @property
    def pad(self) -> int:
        return self.border_pad

    @property
    def offsets(self) -> range:
        return range(0, self.padded, self.step)

    def window(self, index: int) -> torch.Tensor:
        window = torch.ones(self.chunk)
        if self.fade:
            window[-self.fade :] = torch.linspace(1, 0, self.fade)
            window[: self.fade] = torch.linspace(0, 1, self.fade)
            if index == 0:
                window[: self.fade] = 1
            elif index == len(self.offsets) - 1:
                window[-self.fade :] = 1
        return window

    def read(self, reader: FrameReader, index: int) -> tuple[np.ndarray, int]:
        offset = self.offsets[index]
        seg_len = min(self.chunk, self.padded - offset)
        positions = np.arange(offset - self.pad, offset - self.pad + seg_len)
        if self.pad:  # the border's reflection, read back from the track itself
            positions = np.where(positions < 0, -positions, positions)
            positions = np.where(positions >= self.frames, 2 * (self.frames - 1) - positions, positions)
        low = int(positions.min())
        part = reader.read(low, int(positions.max()) + 1)[:, positions - low]
        if seg_len < self.chunk:
            mode = "reflect" if seg_len > self.chunk // 2 else "constant"
            part = np.pad(part, ((0, 0), (0, self.chunk - seg_len)), mode=mode)
        return np.ascontiguousarray(part, dtype=np.float32), seg_len

    def divide(self, weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(weighted / weight, nan=0.0)


@dataclass(frozen=True)
class UvrChunkPlan(ChunkPlan):
    """python-audio-separator's and UVR's RoFormer chunking (the module's docstring)."""

    #: The shortest input the network can take (its STFT size); a shorter track is zero-padded up to it.
    min_input: int = 0
    exact_output = False

    @property
    def pad(self) -> int:
        return 0

    @cached_property
    def offsets(self) -> list[int]:
        starts: list[int] = []
        for offset in range(0, self.frames, self.step):
            if offset + self.chunk >= self.frames:
                last = max(self.frames - self.chunk, 0)
                if not starts or starts[-1] != last:
                    starts.append(last)
                break
            starts.append(offset)
        return starts

    @cached_property
    def _hamming(self) -> torch.Tensor:
        return torch.from_numpy(windows.hamming(self.chunk).astype(np.float32))

    def window(self, index: int) -> torch.Tensor:
        return self._hamming

    def read(self, reader: FrameReader, index: int) -> tuple[np.ndarray, int]:
        offset = self.offsets[index]
        seg_len = min(self.chunk, self.frames - offset)
        part = reader.read(offset, offset + seg_len)
        if seg_len < self.min_input:  # audio-separator fails here; a few milliseconds of audio still separate
            part = np.pad(part, ((0, 0), (0, self.min_input - seg_len)))
        return np.ascontiguousarray(part, dtype=np.float32), seg_len

    def divide(self, weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weighted / weight.clamp(min=1e-10)


@dataclass(frozen=True)
class UvrMdx23cChunkPlan(ChunkPlan):
    """python-audio-separator's and UVR's MDX23C chunking (the module's docstring)."""

    overlap: int

    @property
    def pad(self) -> int:
        return self.chunk - self.step

    @property
    def padded(self) -> int:
        tail = self.step - (self.frames - self.chunk) % self.step
        return self.frames + tail + 2 * self.pad

    @property
    def offsets(self) -> range:
        return range(0, self.padded - self.chunk + 1, self.step)

    @cached_property
    def _ones(self) -> torch.Tensor:
        return torch.ones(self.chunk)

    def window(self, index: int) -> torch.Tensor:
        return self._ones

    def read(self, reader: FrameReader, index: int) -> tuple[np.ndarray, int]:
        start = self.offsets[index] - self.pad  # the reader gives zeros outside the track: the padding
        return np.ascontiguousarray(reader.read(start, start + self.chunk), dtype=np.float32), self.chunk

    def divide(self, weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weighted / self.overlap


def plan_chunks(
    rule: str, frames: int, chunk: int, num_overlap: int, *, family: str = "roformer", min_input: int = 0
) -> ChunkPlan:
    """The plan of `rule` (one of CHUNKING_RULES) for a track of `frames` samples. `family`
    (`roformer` or `mdx23c`) picks which of audio-separator's rules `uvr` is; `min_input` is the
    shortest input the network takes (the RoFormer `uvr` rule pads a shorter track up to it)."""
    step = chunk // num_overlap
    if rule == "uvr" and family == "mdx23c":
        return UvrMdx23cChunkPlan(frames, chunk, step, num_overlap)
    if rule == "uvr":
        return UvrChunkPlan(frames, chunk, step, min(min_input, chunk))
    if rule == "msst":
        border = chunk - step
        pad = border if frames > 2 * border and border > 0 else 0
        return MsstChunkPlan(frames, chunk, step, chunk // 10, pad)
    raise ValueError(f"unknown chunking rule '{rule}'; known: {', '.join(CHUNKING_RULES)}")
