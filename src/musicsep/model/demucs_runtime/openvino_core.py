"""HTDemucs's network between its spectrogram and inverse spectrogram, run by OpenVINO (issue 17).

Why only that part: OpenVINO has no complex tensors, and the STFT pair is cheap; the encoders,
the cross-transformer and the decoders are the cost (docs/performance.md, "HTDemucs on
OpenVINO"). `HTDemucsCore` is demucs 4.1's `HTDemucs.forward` from the normalised magnitude and
waveform to the two branches' outputs, over the model's own submodules; `OpenVinoHTDemucs` is the
rest of that forward (padding to the training length, `_spec`, `_magnitude`, `_mask`, `_ispec`,
the branches' sum), calling the model's own methods, so `OpenVinoHTDemucs(model)(mix)` equals
`model(mix)` to float rounding (tests/model/test_runtime_htdemucs.py).

The input is always the training segment (HTDemucs pads every chunk to it), so the graph is
saved with static shapes, batch 1: a batch of chunks is run one chunk per inference (the
network treats the items of a batch independently). Attention is traced through
`scaled_dot_product_attention` (not PyTorch's fused fast path), which OpenVINO fuses into one
operator. The IR keeps f32 weights; the precision is a compile-time hint: f32 (exact) or bf16
(the fast mode, where the CPU plugin says it can).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from musicsep.model.runtime.openvino_session import RequestPool, save_ir

#: Part of the converted IR's cache key: a change to HTDemucsCore or `convert` changes it, so an IR
#: converted by older code is never read back.
IR_FORMAT = "htdemucs core, static shapes, 1"


def supports(model: nn.Module) -> bool:
    """HTDemucs in its released form: complex-as-channels output, trained-segment padding, and
    no random shift of the positional embedding (a trace would freeze one draw of it)."""
    from demucs.htdemucs import HTDemucs

    if not isinstance(model, HTDemucs) or not model.cac or not model.use_train_segment:
        return False
    transformer = model.crosstransformer
    return transformer is None or getattr(transformer, "sin_random_shift", 0) == 0


def training_length(model: nn.Module) -> int:
    return int(model.segment * model.samplerate)


class HTDemucsCore(nn.Module):
    """`(mag (1, 2C, F, T), mix (1, C, L))` -> `(spectral branch (1, S, 2C, F, T), time branch (1, S, C, L))`,
    both de-normalised, as HTDemucs.forward has them just before `_mask` and the sum."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mag: torch.Tensor, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        batch, _, bins, frames = mag.shape
        mean, std = mag.mean(dim=(1, 2, 3), keepdim=True), mag.std(dim=(1, 2, 3), keepdim=True)
        x = (mag - mean) / (1e-5 + std)
        meant, stdt = mix.mean(dim=(1, 2), keepdim=True), mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)
        skips, skips_t, lengths, lengths_t = [], [], [], []
        for idx, encode in enumerate(m.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(m.tencoder):
                lengths_t.append(xt.shape[-1])
                xt = m.tencoder[idx](xt)
                if m.tencoder[idx].empty:
                    inject = xt  # the branches merge here: the time output joins the frequency input
                else:
                    skips_t.append(xt)
            x = encode(x, inject)
            if idx == 0 and m.freq_emb is not None:
                emb = m.freq_emb(torch.arange(x.shape[-2], device=x.device)).t()[None, :, :, None]
                x = x + m.freq_emb_scale * emb.expand_as(x)
            skips.append(x)
        if m.crosstransformer:
            x, xt = self._transformer(x, xt)
        for idx, decode in enumerate(m.decoder):
            x, pre = decode(x, skips.pop(), lengths.pop())
            offset = m.depth - len(m.tdecoder)
            if idx >= offset:
                tdec = m.tdecoder[idx - offset]
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, lengths_t.pop())
                else:
                    xt, _ = tdec(xt, skips_t.pop(), lengths_t.pop())
        sources = len(m.sources)
        x = x.view(batch, sources, -1, bins, frames) * std[:, None] + mean[:, None]
        xt = xt.view(batch, sources, -1, mix.shape[-1]) * stdt[:, None] + meant[:, None]
        return x, xt

    def _transformer(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        if not m.bottom_channels:
            return m.crosstransformer(x, xt)
        bins = x.shape[2]
        x = rearrange(m.channel_upsampler(rearrange(x, "b c f t -> b c (f t)")), "b c (f t) -> b c f t", f=bins)
        x, xt = m.crosstransformer(x, m.channel_upsampler_t(xt))
        x = rearrange(m.channel_downsampler(rearrange(x, "b c f t -> b c (f t)")), "b c (f t) -> b c f t", f=bins)
        return x, m.channel_downsampler_t(xt)


def core_inputs(model: nn.Module, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(complex spectrum, magnitude, padded mix) of `(batch, C, L <= training length)`, as HTDemucs.forward has them."""
    mix = F.pad(mix, (0, training_length(model) - mix.shape[-1]))
    z = model._spec(mix)
    return z, model._magnitude(z), mix


def convert(model: nn.Module, path: Path) -> None:
    """Convert the core and save it as OpenVINO IR at `path` (`.xml` beside its `.bin`, f32 weights)."""
    import openvino

    from musicsep.model.demucs_stream import attention_through_sdpa

    mix = torch.zeros(1, model.audio_channels, training_length(model))
    with torch.no_grad():
        _, mag, mix = core_inputs(model, mix)
    with torch.no_grad(), attention_through_sdpa(), warnings.catch_warnings():
        # Demucs's shape checks become constants in the trace: right for the one static shape here.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.* is deprecated", category=DeprecationWarning)
        converted = openvino.convert_model(HTDemucsCore(model).eval(), example_input=(mag, mix))
    # Static shapes: the positional embeddings and other shape-derived constants fold into f32
    # constants at compile time instead of being computed at run time in the inference
    # precision (under bf16 the dynamic graph gave 29-35 dB against f32, the static one 48-51 dB).
    converted.reshape(
        {port: openvino.PartialShape(list(t.shape)) for port, t in zip(converted.inputs, (mag, mix), strict=True)}
    )
    save_ir(converted, path)


def bf16_capable() -> bool:
    """Whether OpenVINO's CPU plugin says this CPU runs bf16 natively (AVX-512 bf16, AMX)."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoHTDemucs:
    """Callable like the HTDemucs module on `(batch, C, L)`: spectrogram in torch, network in
    OpenVINO, mask and inverse spectrogram in torch. `streams` OpenVINO streams of
    `threads / streams` threads each; concurrent calls (the engine's `jobs`) each take an infer
    request of their own, so with two streams two chunks run side by side."""

    def __init__(
        self, model: nn.Module, ir: Path, *, precision: str, threads: int, streams: int, cache_dir: Path | None
    ) -> None:
        import openvino

        core = openvino.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY",
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(threads),
        }
        # Compiled from the path, so that with a cache a later process reads the blob, not the graph.
        self._pool = RequestPool(core.compile_model(str(ir), "CPU", config))
        self.model = model
        self.precision = precision
        self.streams = streams

    def core(self, mag: torch.Tensor, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk's network outputs (copied out of the request's reused buffers)."""
        spec, wave = self._pool.infer([mag.numpy(), mix.numpy()])
        return torch.from_numpy(spec), torch.from_numpy(wave)

    def __call__(self, mix: torch.Tensor) -> torch.Tensor:
        m = self.model
        length = mix.shape[-1]
        outs = []
        for item in mix.float().split(1):
            z, mag, padded = core_inputs(m, item)
            x, xt = self.core(mag.contiguous(), padded.contiguous())
            outs.append(xt + m._ispec(m._mask(z, x), padded.shape[-1]))
        return torch.cat(outs)[..., :length]
