"""The RoFormers' network between their STFT and inverse STFT, run by OpenVINO in f32 (issue 17).

Why only that part: OpenVINO's PyTorch frontend converts the transformer stack well (one
full-size 8 s chunk on an AMD EPYC: ViperX 1297 125.8 CPU s against torch's 219.7, Kim's
Mel-Band 47.5 against 96.0, SDR 118-119 dB; bench/roformer_runtime_speed.py, docs/performance.md,
"CPU runtimes"), while the STFT pair stays in torch exactly as the package computes it.
`RoformerCore` is the package's (bs-roformer 0.3.10) forward from the band split to the mask
estimators, over the module's own submodules; `OpenVinoRoformer.__call__` is the rest of
that forward (STFT, complex mask, inverse STFT; for Mel-Band RoFormer also the gather of its
overlapping bands by index and the average of their masks, which the frontend does not
convert), so the result equals `module(audio)` to float rounding
(tests/model/test_runtime_roformer.py: within 1e-4).

The conversion traces the core once on a short input (the graph keeps its time axis dynamic; a
full-length trace would hold every activation, 10+ GB at 8 s) with the rotary embeddings' cache
off, so the positions are computed from the input's length rather than baked in at the trace's.
The converted model is saved (f32 weights, not OpenVINO's default fp16 compression) under the
runtime cache, keyed like the runtime choice, so later processes read it instead of converting.

What stays in memory is the compiled network and `Stft` (the STFT's arguments and window), not
the torch module: its weights are OpenVINO's now, and keeping both doubled the model's RSS.
The network is compiled for the chunk's number of frames (every chunk of a plan has it, but a
track shorter than one chunk); another length runs a second, dynamic-shape compilation made
when first needed. Static because the dynamic-shape network planned no memory reuse: +4.3 GB of
activations per 801-frame pass of ViperX 1297 against +0.86 GB static (and 9 % more CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from musicsep.model.runtime.openvino_session import RequestPool, save_ir

#: Frames of the spectrogram the core is traced on (any length works; short keeps it cheap).
TRACE_FRAMES = 20


def supports(module: nn.Module) -> bool:
    """The two RoFormers of bs-roformer 0.3.10 (Mel-Band's band gather and mask average stay in torch)."""
    return type(module).__name__ in ("BSRoformer", "MelBandRoformer")


@dataclass(frozen=True, eq=False)
class Stft:
    """The part of the package's module the forward needs around the core: STFT arguments, window,
    channels and, for Mel-Band RoFormer, its bands' overlapping rows of the spectrum (gathered
    before the core, and the masks of a row shared by several bands averaged after it)."""

    kwargs: dict
    window_fn: Callable[..., torch.Tensor]
    channels: int
    band_rows: torch.Tensor | None = None  # Mel-Band: the (bin, channel) row each band input reads
    bands_per_row: torch.Tensor | None = None  # Mel-Band: how many bands read each bin
    match_length: bool = False  # Mel-Band's match_input_audio_length: the inverse STFT's length

    @classmethod
    def of(cls, module: nn.Module) -> Stft:
        if not hasattr(module, "freq_indices"):
            return cls(dict(module.stft_kwargs), module.stft_window_fn, module.audio_channels)
        return cls(
            dict(module.stft_kwargs),
            module.stft_window_fn,
            module.audio_channels,
            module.freq_indices.clone(),
            module.num_bands_per_freq.clone(),
            bool(module.match_input_audio_length),
        )

    def frames(self, samples: int) -> int:
        """Frames of the STFT of `samples` samples (torch.stft's centred framing)."""
        return samples // self.kwargs["hop_length"] + 1

    @property
    def features(self) -> int:
        """The core's feature axis: spectrum rows (bins x channels, or the bands' rows) x (real, imaginary)."""
        rows = (self.kwargs["n_fft"] // 2 + 1) * self.channels if self.band_rows is None else len(self.band_rows)
        return rows * 2

    def masked(self, spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The spectrum `(batch, rows, frames)` (complex) times the core's masks `(batch, stems,
        frames, features)`: `(batch, stems, rows, frames)`."""
        mask = torch.view_as_complex(rearrange(mask, "b n t (f c) -> b n f t c", c=2).contiguous())
        if self.band_rows is not None:
            batch, stems, _, frames = mask.shape
            index = self.band_rows[None, None, :, None].expand(batch, stems, -1, frames)
            summed = mask.new_zeros(batch, stems, spec.shape[1], frames).scatter_add_(2, index, mask)
            mask = summed / self.bands_per_row.repeat_interleave(self.channels)[:, None].clamp(min=1e-8)
        return spec[:, None] * mask


class RoformerCore(nn.Module):
    """`(batch, frames, bins x channels x 2)` STFT features -> `(batch, stems, frames, bins x channels x 2)` masks."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        x = m.band_split(x)
        for time_transformer, freq_transformer in m.layers:
            batch, frames, bands, dim = x.shape
            x = x.permute(0, 2, 1, 3).reshape(batch * bands, frames, dim)
            x = time_transformer(x)
            x = x.reshape(batch, bands, frames, dim).permute(0, 2, 1, 3).reshape(batch * frames, bands, dim)
            x = freq_transformer(x)
            x = x.reshape(batch, frames, bands, dim)
        if hasattr(m, "final_norm"):  # BS-RoFormer's; Mel-Band's transformers end with a norm of their own
            x = m.final_norm(x)
        return torch.stack([estimator(x) for estimator in m.mask_estimators], dim=1)


def features(stft: Stft, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's STFT of `(batch, channels, samples)`: (complex spectrum `(batch, bins x
    channels, frames)`, the core's input `(batch, frames, features)`)."""
    batch, channels, samples = audio.shape
    window = stft.window_fn(device=audio.device)
    spec = torch.stft(audio.reshape(batch * channels, samples), **stft.kwargs, window=window, return_complex=True)
    spec = rearrange(spec.reshape(batch, channels, *spec.shape[1:]), "b s f t -> b (f s) t")
    rows = spec if stft.band_rows is None else spec[:, stft.band_rows]
    return spec, rearrange(torch.view_as_real(rows), "b f t c -> b t (f c)").contiguous()


def convert(module: nn.Module, path: Path) -> None:
    """Convert the core and save it as OpenVINO IR at `path` (`.xml` beside its `.bin`)."""
    import openvino

    caching = [(mod, mod.cache_if_possible) for mod in module.modules() if hasattr(mod, "cache_if_possible")]
    try:
        for mod, _ in caching:
            mod.cache_if_possible = False
        sample = torch.zeros(1, module.audio_channels, module.stft_kwargs["hop_length"] * (TRACE_FRAMES - 1))
        _, example = features(Stft.of(module), sample)
        with torch.no_grad():
            converted = openvino.convert_model(RoformerCore(module).eval(), example_input=example)
    finally:
        for mod, was in caching:
            mod.cache_if_possible = was
    save_ir(converted, path)


class OpenVinoRoformer:
    """Callable like the module on `(batch, channels, samples)`: STFT in torch, core in OpenVINO,
    mask and inverse STFT in torch. Concurrent calls each take an infer request of their own.

    `frames`: the length the network is compiled for (one batch row at a time: rows are
    independent), other lengths compiled for when first met; None compiles it for any length
    (dynamic shapes) at once."""

    def __init__(self, stft: Stft, ir: Path, *, threads: int, cache_dir: Path | None, frames: int | None) -> None:
        import openvino

        self.stft = stft
        self.frames = frames
        self._core = openvino.Core()
        if cache_dir is not None:
            self._core.set_property({"CACHE_DIR": str(cache_dir)})
        self._config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": str(threads),
        }
        self._ir = ir
        self._lock = threading.Lock()
        self._static = self._compile(frames) if frames is not None else None
        self._dynamic = self._compile(None) if frames is None else None

    def _compile(self, frames: int | None) -> RequestPool:
        if frames is None:  # from the path, so that with a cache a later process reads the blob
            return RequestPool(self._core.compile_model(str(self._ir), "CPU", self._config))
        model = self._core.read_model(str(self._ir))
        model.reshape({0: [1, frames, self.stft.features]})
        return RequestPool(self._core.compile_model(model, "CPU", self._config))

    def masks(self, x: torch.Tensor) -> torch.Tensor:
        """The core's masks for the features `x` `(batch, frames, features)`."""
        array = x.numpy()
        if self._static is not None and x.shape[1] == self.frames:
            rows = [self._static.infer([array[row : row + 1]])[0] for row in range(array.shape[0])]
            return torch.from_numpy(np.concatenate(rows))
        with self._lock:
            if self._dynamic is None:
                self._dynamic = self._compile(None)
            dynamic = self._dynamic
        return torch.from_numpy(dynamic.infer([array])[0])

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        spec, x = features(self.stft, audio)
        spec = self.stft.masked(spec, self.masks(x))
        stems = spec.shape[1]
        spec = rearrange(spec, "b n (f s) t -> (b n s) f t", s=self.stft.channels)
        window = self.stft.window_fn(device=audio.device)
        length = audio.shape[-1] if self.stft.match_length else None
        out = torch.istft(spec, **self.stft.kwargs, window=window, return_complex=False, length=length)
        out = rearrange(out, "(b n s) t -> b n s t", s=self.stft.channels, n=stems)
        return out[:, 0] if stems == 1 else out

    def to(self, *args, **kwargs) -> OpenVinoRoformer:
        return self  # CPU only: the loader keeps CUDA and the fallback's CPU copy in torch

    def eval(self) -> OpenVinoRoformer:
        return self
