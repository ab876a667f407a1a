"""Streaming MSST separation: the reference `demix` chunking, with finished samples leaving early.

Followed: ZFTurbo/Music-Source-Separation-Training at commit
ccc011abf7f89dd7922bb2888d48493b575c0289, `utils/model_utils.py` (`demix` in its "generic" mode,
`_getWindowingArray`). Its arithmetic, which this module reproduces:

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

One departure, on purpose: the reference picks the first/last-chunk windows per *batch* of
chunks, so with `inference.batch_size > 1` its output depends on the batch size. Here each chunk
gets the window the reference gives it with batch size 1, whatever the batch size; the batch
size changes speed only.

Streaming: the accumulator covers one chunk. Once chunk `k` is added, no later chunk touches
padded positions before chunk `k + 1`'s start, so they are divided and handed out; memory is
O(chunk), never O(track).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.msst.config import MsstConfig, musicsep_stem_name

PRECISIONS = ("fp32", "bf16", "fp16")


class FrameReader(Protocol):
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames `[start, stop)` as float32 `(channels, stop - start)`, zeros outside the track."""


@dataclass(frozen=True)
class ChunkPlan:
    """Where the reference puts its chunks for a track of `frames` samples (padded coordinates)."""

    frames: int
    chunk: int
    step: int
    fade: int
    pad: int  # reflect padding at each end of the track (0 when the reference does not pad)

    @property
    def padded(self) -> int:
        return self.frames + 2 * self.pad

    @property
    def offsets(self) -> range:
        return range(0, self.padded, self.step)

    def window(self, index: int) -> torch.Tensor:
        """The weights of chunk `index`, edge fades removed at the track's first and last chunk."""
        window = torch.ones(self.chunk)
        if self.fade:
            window[-self.fade :] = torch.linspace(1, 0, self.fade)
            window[: self.fade] = torch.linspace(0, 1, self.fade)
            if index == 0:
                window[: self.fade] = 1
            elif index == len(self.offsets) - 1:
                window[-self.fade :] = 1
        return window


def plan_chunks(frames: int, chunk: int, num_overlap: int) -> ChunkPlan:
    step = chunk // num_overlap
    border = chunk - step
    pad = border if frames > 2 * border and border > 0 else 0
    return ChunkPlan(frames, chunk, step, chunk // 10, pad)


def read_chunk(reader: FrameReader, plan: ChunkPlan, offset: int) -> tuple[np.ndarray, int]:
    """The model input for the chunk at padded `offset` (length `plan.chunk`) and how many of its
    samples are real track (or border padding) rather than the chunk's own end padding."""
    seg_len = min(plan.chunk, plan.padded - offset)
    index = np.arange(offset - plan.pad, offset - plan.pad + seg_len)
    if plan.pad:  # the border's reflection, read back from the track itself
        index = np.where(index < 0, -index, index)
        index = np.where(index >= plan.frames, 2 * (plan.frames - 1) - index, index)
    low = int(index.min())
    part = reader.read(low, int(index.max()) + 1)[:, index - low]
    if seg_len < plan.chunk:
        mode = "reflect" if seg_len > plan.chunk // 2 else "constant"
        part = np.pad(part, ((0, 0), (0, plan.chunk - seg_len)), mode=mode)
    return np.ascontiguousarray(part, dtype=np.float32), seg_len


@dataclass(frozen=True)
class MsstPassOptions:
    batch_size: int = 1


class MsstSeparator:
    """A torch module that maps `(batch, channels, samples)` to `(batch, stems, channels, samples)`
    (or `(batch, channels, samples)` for one stem), run over tracks as MSST's `demix` does.

    `sources` are musicsep's stem names (config.py); for a single-target model the second source
    is the mix minus the target, as MSST's `--extract_instrumental` and UVR compute it.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        config: MsstConfig,
        *,
        name: str,
        device: torch.device,
        precision: str = "fp32",
        chunk_size: int | None = None,
        num_overlap: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise InvalidOptions(f"precision must be one of {', '.join(PRECISIONS)}")
        self.name = name
        self.model = module
        self.config = config
        self.device = device
        self.precision = precision
        self.samplerate = config.samplerate
        self.audio_channels = config.num_channels
        self.normalize = config.normalize
        self.chunk_size = int(chunk_size or config.chunk_size)
        self.num_overlap = int(num_overlap or config.num_overlap)
        if not 10 <= self.chunk_size or not 1 <= self.num_overlap <= self.chunk_size:
            raise InvalidOptions("chunk size must be at least 10 samples and num_overlap between 1 and it")
        instruments = config.instruments
        self._outputs = [musicsep_stem_name(item, instruments) for item in config.model_outputs]
        target = config.target_instrument
        if target is not None and len(instruments) == 2:
            other = next(item for item in instruments if item != target)
            self._complement: str | None = musicsep_stem_name(other, instruments)
        else:
            self._complement = None
        self.sources = self._outputs + ([self._complement] if self._complement else [])

    def prepare(self, frames: int, stems: list[str], options: object = None) -> MsstPass:
        """The engine's entry point; of Demucs's pass options only `batch_size` applies here
        (the chunking is the model's own), and `shifts` is refused rather than ignored."""
        unknown = [stem for stem in stems if stem not in self.sources]
        if unknown:
            raise InvalidOptions(
                f"stem '{unknown[0]}' is not produced by {self.name}; it produces: {', '.join(self.sources)}"
            )
        if getattr(options, "shifts", 0):
            raise InvalidOptions(f"shifts apply to Demucs models only, not to {self.name}")
        batch_size = int(getattr(options, "batch_size", 1) or 1)
        return MsstPass(self, frames, list(stems), batch_size)

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        """One forward pass over `(batch, channels, chunk)`; `(batch, outputs, channels, chunk)`
        float32 on the CPU out."""
        x = torch.from_numpy(batch).to(self.device)
        with torch.inference_mode(), _autocast(self.device, self.precision):
            out = self.model(x)
        out = out.float().cpu()
        if out.ndim == 3:
            out = out.unsqueeze(1)
        if out.ndim != 4 or out.shape[1] != len(self._outputs) or out.shape[2] != batch.shape[1]:
            raise ModelUnavailable(
                f"{self.name} returns stems of shape {tuple(out.shape[1:-1])}, but its "
                f"config names {len(self._outputs)} stem(s) of {batch.shape[1]} channel(s)"
            )
        if out.shape[-1] < batch.shape[-1]:
            raise ModelUnavailable(
                f"{self.name} returned {out.shape[-1]} samples for a chunk of "
                f"{batch.shape[-1]}: the chunk size does not suit the model's STFT hop"
            )
        return out[..., : batch.shape[-1]]


class MsstPass:
    """One separation of one track: chunks in order, finished samples out after every batch."""

    def __init__(self, separator: MsstSeparator, frames: int, stems: list[str], batch_size: int) -> None:
        self._separator = separator
        self._stems = stems
        self._batch_size = max(1, batch_size)
        self.plan = plan_chunks(frames, separator.chunk_size, separator.num_overlap)
        outputs = separator._outputs
        needed = [stem for stem in stems if stem in outputs]
        if separator._complement in stems and outputs[0] not in needed:
            needed.append(outputs[0])
        self._needed = needed
        self._model_index = [outputs.index(stem) for stem in needed]
        self.chunks = len(self.plan.offsets)

    def blocks(self, reader: FrameReader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        plan = self.plan
        offsets = plan.offsets
        channels = self._separator.audio_channels
        acc = torch.zeros(len(self._needed), channels, 0)
        weight = torch.zeros(0)
        base = 0  # padded position of acc[..., 0]
        for first in range(0, len(offsets), self._batch_size):
            indices = range(first, min(first + self._batch_size, len(offsets)))
            parts = [read_chunk(reader, plan, offsets[k]) for k in indices]
            out = self._separator.forward(np.stack([part for part, _ in parts]))[:, self._model_index]
            for row, (k, (_, seg_len)) in enumerate(zip(indices, parts, strict=True)):
                start = offsets[k] - base
                end = start + seg_len
                if end > weight.shape[0]:
                    grow = end - weight.shape[0]
                    acc = torch.cat([acc, acc.new_zeros(*acc.shape[:-1], grow)], dim=-1)
                    weight = torch.cat([weight, weight.new_zeros(grow)])
                window = plan.window(k)[:seg_len]
                acc[..., start:end] += out[row, ..., :seg_len] * window
                weight[start:end] += window
                on_chunk()
            del out
            final = offsets[indices[-1] + 1] if indices[-1] + 1 < len(offsets) else plan.padded
            count = final - base
            done = torch.nan_to_num(acc[..., :count] / weight[:count], nan=0.0)
            acc, weight = acc[..., count:].clone(), weight[count:].clone()
            lo, hi = max(base, plan.pad), min(final, plan.pad + plan.frames)  # the track, not its border
            if hi > lo:
                yield self._assemble(reader, done[..., lo - base : hi - base], lo - plan.pad)
            base = final

    def _assemble(self, reader: FrameReader, estimates: torch.Tensor, start: int) -> np.ndarray:
        """The requested stems in order; the complement of a single-target model is mix - target."""
        length = estimates.shape[-1]
        block = np.empty((len(self._stems), estimates.shape[1], length), np.float32)
        for row, stem in enumerate(self._stems):
            if stem == self._separator._complement:
                target = estimates[self._needed.index(self._separator._outputs[0])]
                block[row] = reader.read(start, start + length) - target.numpy()
            else:
                block[row] = estimates[self._needed.index(stem)].numpy()
        return block


def build_msst_separator(
    module: torch.nn.Module,
    config: MsstConfig,
    *,
    name: str,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    chunk_size: int | None = None,
    num_overlap: int | None = None,
) -> MsstSeparator:
    """A streaming separator for any MSST-format model (RoFormer, MDX23C) on `device`.

    `chunk_size` / `num_overlap` override the config's (the catalog keeps a chunk length per model,
    since tools disagree on it).
    """
    device = torch.device(device)
    module = module.to(device).eval()
    return MsstSeparator(
        module, config, name=name, device=device, precision=precision, chunk_size=chunk_size, num_overlap=num_overlap
    )


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
