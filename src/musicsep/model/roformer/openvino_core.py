"""BS-RoFormer's network between its STFT and inverse STFT, run by OpenVINO in f32 (issue 17).

Why only that part: OpenVINO's PyTorch frontend converts the transformer stack well (one
full-size ViperX 1297 pass on 2 s: 27.4 CPU s against torch's 37.7, SDR 117.7 dB;
docs/performance.md, "CPU runtimes"), while the STFT pair stays in torch exactly as the package
computes it. `RoformerCore` is the package's (bs-roformer 0.3.10) forward from the band split to
the mask estimators, over the module's own submodules; `OpenVinoRoformer.__call__` is the rest of
that forward (STFT, complex mask, inverse STFT), so the result equals `module(audio)` to float
rounding (tests/model/test_runtime_roformer.py: within 1e-4).

The conversion traces the core once on a short input (the graph keeps its time axis dynamic; a
full-length trace would hold every activation, 10+ GB at 8 s) with the rotary embeddings' cache
off, so the positions are computed from the input's length rather than baked in at the trace's.
The converted model is saved (f32 weights, not OpenVINO's default fp16 compression) under the
runtime cache, keyed like the runtime choice, so later processes read it instead of converting.
"""

from __future__ import annotations

import os
import queue
import shutil
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

#: Frames of the spectrogram the core is traced on (any length works; short keeps it cheap).
TRACE_FRAMES = 20


def supports(module: nn.Module) -> bool:
    """BS-RoFormer only, for now: Mel-Band RoFormer gathers its bands by index, not converted yet."""
    return type(module).__name__ == "BSRoformer"


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
        x = m.final_norm(x)
        return torch.stack([estimator(x) for estimator in m.mask_estimators], dim=1)


def features(module: nn.Module, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's STFT of `(batch, channels, samples)`: (complex spectrum `(batch, bins x
    channels, frames, 2)`, the core's input `(batch, frames, bins x channels x 2)`)."""
    batch, channels, samples = audio.shape
    window = module.stft_window_fn(device=audio.device)
    spec = torch.stft(
        audio.reshape(batch * channels, samples), **module.stft_kwargs, window=window, return_complex=True
    )
    spec = torch.view_as_real(spec).reshape(batch, channels, *spec.shape[1:], 2)
    spec = rearrange(spec, "b s f t c -> b (f s) t c")
    return spec, rearrange(spec, "b f t c -> b t (f c)").contiguous()


def convert(module: nn.Module, path: Path) -> None:
    """Convert the core and save it as OpenVINO IR at `path` (`.xml` beside its `.bin`)."""
    import openvino

    caching = [(mod, mod.cache_if_possible) for mod in module.modules() if hasattr(mod, "cache_if_possible")]
    try:
        for mod, _ in caching:
            mod.cache_if_possible = False
        sample = torch.zeros(1, module.audio_channels, module.stft_kwargs["hop_length"] * (TRACE_FRAMES - 1))
        _, example = features(module, sample)
        with torch.no_grad():
            converted = openvino.convert_model(RoformerCore(module).eval(), example_input=example)
    finally:
        for mod, was in caching:
            mod.cache_if_possible = was
    # Written beside, then renamed into place: a process converting the same checkpoint at the
    # same time (two workers' first jobs) never reads a half-written IR.
    partial = path.parent.with_name(f"{path.parent.name}.{os.getpid()}.part")
    partial.mkdir(parents=True, exist_ok=True)
    openvino.save_model(converted, str(partial / path.name), compress_to_fp16=False)
    try:
        os.rename(partial, path.parent)
    except OSError:  # another process's IR got there first: the same network
        shutil.rmtree(partial, ignore_errors=True)


class OpenVinoRoformer:
    """Callable like the module on `(batch, channels, samples)`: STFT in torch, core in OpenVINO,
    mask and inverse STFT in torch. Concurrent calls each take an infer request of their own."""

    def __init__(self, module: nn.Module, ir: Path, *, threads: int, cache_dir: Path | None) -> None:
        import openvino

        core = openvino.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": str(threads),
        }
        self._compiled = core.compile_model(str(ir), "CPU", config)
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.module = module

    def masks(self, x: torch.Tensor) -> torch.Tensor:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            out = request.infer({0: np.ascontiguousarray(x.numpy())})[0]
            return torch.from_numpy(np.array(out, copy=True))
        finally:
            self._idle.put(request)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        m = self.module
        spec, x = features(m, audio)
        mask = self.masks(x)
        stems = mask.shape[1]
        mask = rearrange(mask, "b n t (f c) -> b n f t c", c=2)
        spec = torch.view_as_complex(spec[:, None].contiguous()) * torch.view_as_complex(mask.contiguous())
        spec = rearrange(spec, "b n (f s) t -> (b n s) f t", s=m.audio_channels)
        window = m.stft_window_fn(device=audio.device)
        out = torch.istft(spec, **m.stft_kwargs, window=window, return_complex=False)
        out = rearrange(out, "(b n s) t -> b n s t", s=m.audio_channels, n=stems)
        return out[:, 0] if stems == 1 else out

    def to(self, *args, **kwargs) -> OpenVinoRoformer:
        return self  # CPU only: the loader keeps CUDA and the fallback's CPU copy in torch

    def eval(self) -> OpenVinoRoformer:
        return self
