"""Streaming separation for MSST-format models (RoFormer, MDX23C), with finished samples leaving early.

The chunking is one of the plans in chunking.py (`msst`: MSST's reference `demix`; `uvr`:
python-audio-separator's and UVR's rules, one for RoFormers and one for MDX23C), chosen per
model; this module runs a plan's chunks through the network, in batches, and adds up their
weighted outputs.

Streaming: the accumulator covers a batch of chunks. A plan's chunk starts never decrease, so once
the chunks up to `k` are added, no later chunk touches positions before chunk `k + 1`'s start:
they are divided and handed out; memory is O(chunk x batch), never O(track). Every chunk is
weighted and added on its own, so the batch size changes speed only, never the output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.msst.chunking import CHUNKING_RULES, FAMILIES, FrameReader, plan_chunks
from musicsep.model.msst.config import MsstConfig, musicsep_stem_name

PRECISIONS = ("fp32", "bf16", "fp16")


class MsstSeparator:
    """A torch module that maps `(batch, channels, samples)` to `(batch, stems, channels, samples)`
    (or `(batch, channels, samples)` for one stem), run over tracks chunked by the `chunking` rule
    (chunking.py).

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
        chunking: str = "msst",
        family: str = "roformer",
    ) -> None:
        if precision not in PRECISIONS:
            raise InvalidOptions(f"precision must be one of {', '.join(PRECISIONS)}")
        if chunking not in CHUNKING_RULES or family not in FAMILIES:
            raise InvalidOptions(
                f"chunking must be one of {', '.join(CHUNKING_RULES)}, for a family of {', '.join(FAMILIES)}"
            )
        self.chunking = chunking
        self.family = family
        self.name = name
        self.model = module  # or a roformer.openvino_core.OpenVinoRoformer, callable the same way
        self.runtime = "torch"  # which runtime runs `model` (roformer/runtimes.py)
        self.runtime_choice = None  # how `auto` chose it (a runtime.Choice), when it did
        self.config = config
        self.device = device
        self.precision = precision
        self.samplerate = config.samplerate
        self.audio_channels = config.num_channels
        self.normalize = config.normalize
        self.chunk_size = int(chunk_size or (config.uvr_chunk_size if chunking == "uvr" else config.chunk_size))
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

    def forward(self, batch: np.ndarray, exact: bool = True) -> torch.Tensor:
        """One forward pass over `(batch, channels, chunk)`; `(batch, outputs, channels, chunk)`
        float32 on the CPU out, or fewer samples than `chunk` where the network returns fewer
        (an STFT without `length` ends at the last whole hop) and `exact` is off."""
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
        if exact and out.shape[-1] < batch.shape[-1]:
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
        self.plan = plan_chunks(
            separator.chunking,
            frames,
            separator.chunk_size,
            separator.num_overlap,
            family=separator.family,
            min_input=separator.config.stft_size,
        )
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
            parts = [plan.read(reader, k) for k in indices]
            batch = np.stack([part for part, _ in parts])
            out = self._separator.forward(batch, exact=plan.exact_output)[:, self._model_index]
            for row, (k, (_, seg_len)) in enumerate(zip(indices, parts, strict=True)):
                start = offsets[k] - base
                if start + seg_len > weight.shape[0]:
                    grow = start + seg_len - weight.shape[0]
                    acc = torch.cat([acc, acc.new_zeros(*acc.shape[:-1], grow)], dim=-1)
                    weight = torch.cat([weight, weight.new_zeros(grow)])
                counted = min(seg_len, out.shape[-1])  # samples the network did not return weigh 0
                window = plan.window(k)[:counted]
                acc[..., start : start + counted] += out[row, ..., :counted] * window
                weight[start : start + counted] += window
                on_chunk()
            del out
            final = offsets[indices[-1] + 1] if indices[-1] + 1 < len(offsets) else plan.padded
            count = final - base
            done = plan.divide(acc[..., :count], weight[:count])
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
    chunking: str = "msst",
    family: str = "roformer",
) -> MsstSeparator:
    """A streaming separator for any MSST-format model (RoFormer, MDX23C) on `device`.

    `chunking` is the rule (chunking.py), and `family` (`roformer`, `mdx23c`) which of
    audio-separator's rules `uvr` is. `chunk_size` / `num_overlap` override the config's (the
    catalog keeps them per model, since tools disagree on them). Without `chunk_size`, the `uvr`
    rule's chunk is the config's STFT hop x (`inference.dim_t` - 1), as audio-separator computes it.
    """
    device = torch.device(device)
    module = module.to(device).eval()
    return MsstSeparator(
        module,
        config,
        name=name,
        device=device,
        precision=precision,
        chunk_size=chunk_size,
        num_overlap=num_overlap,
        chunking=chunking,
        family=family,
    )


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
