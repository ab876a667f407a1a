"""MDX-Net ONNX files for tests and benches: UVR's graph interface, random weights, UVR's file names.

Real MDX-Net weights cannot be downloaded here, so the tests build a TFC-TDF U-Net (the
architecture of KUIELab's MDX-Net, which UVR's `.onnx` models are exports of) with random weights
and save it exactly as UVR's files look from outside: one float32 input named `input` and one
output named `output`, both `[batch, 4, dim_f, dim_t]` with a symbolic batch. Written here from
the paper's description (time-frequency convolutions, a bottlenecked fully connected layer along
frequency, a U-Net of strided convolutions with skips); no code is copied. The paper's skips
multiply; these add (the same cost, one elementwise operator): with random weights a product of
skips raises an out-of-calibration spectrogram bin to a high power (one chunk of a synthetic song
gave stems of 127 with products, below 1 with sums), and a stem past +-1 compares clipping, not
arithmetic, when two tools' outputs are compared.

Two sizes:
- `tiny`: one level, a few channels: milliseconds per chunk, for the fast suite.
- `full`: the published scale of UVR's Inst HQ models (11 blocks, 3 convolutions per block, 48
  channels added per level, frequency bottleneck 8): ~14.7 M parameters (the real
  `UVR-MDX-NET-Inst_HQ_4.onnx` is ~56 MB, i.e. ~14 M float32 weights) and the same operator mix
  and FLOPs, for speed measurements only (random weights separate nothing).

`build_mdx_onnx(path, params, size="full"|"tiny", seed=0)` is the stable entry point (the
benchmark against python-audio-separator uses it too).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from musicsep.model.mdx import MdxParams
from musicsep.model.mdx.separator import ZEROED_BINS
from musicsep.model.mdx.stft import stft

#: UVR's Inst HQ 4 (musicsep's catalog; MODELS.md): the geometry the full-size graph is built for.
INST_HQ_4 = MdxParams(n_fft=5120, dim_f=2560, dim_t=256, compensate=1.019, primary="instrumental")
INST_HQ_4_FILE = "UVR-MDX-NET-Inst_HQ_4.onnx"

#: Architecture per size: U-Net blocks (odd), convolutions per block, channels added per level,
#: frequency bottleneck factor of the fully connected layer.
#: Frames of the spectrogram the graph is traced and calibrated on (a multiple of 2 ** levels).
_TRACE_FRAMES = 32

#: Music-like spectrograms the normalisations are calibrated on (a batch: more kinds of tails).
CALIBRATION_SONGS = 4

SIZES = {
    "tiny": {"blocks": 3, "layers": 1, "growth": 4, "bottleneck": 64},
    "full": {"blocks": 11, "layers": 3, "growth": 48, "bottleneck": 8},
}


class _TimeFrequencyBlock(nn.Module):
    """Convolutions over (time, frequency), then a residual two-layer dense map along frequency."""

    def __init__(self, channels: int, layers: int, bins: int, bottleneck: int) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for _ in range(layers):
            convs += [nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        self.convs = nn.Sequential(*convs)
        self.dense = nn.Sequential(
            nn.Linear(bins, bins // bottleneck, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Linear(bins // bottleneck, bins, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        return x + self.dense(x)


class TfcTdfUNet(nn.Module):
    """`[batch, 4, dim_f, dim_t]` spectrogram in, the same shape out (the primary stem's spectrum)."""

    def __init__(self, dim_f: int, blocks: int, layers: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        levels = blocks // 2
        self.first = nn.Sequential(nn.Conv2d(4, growth, 1), nn.BatchNorm2d(growth), nn.ReLU())
        channels, bins = growth, dim_f
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for _ in range(levels):
            self.encoders.append(_TimeFrequencyBlock(channels, layers, bins, bottleneck))
            self.downs.append(
                nn.Sequential(
                    nn.Conv2d(channels, channels + growth, 2, stride=2), nn.BatchNorm2d(channels + growth), nn.ReLU()
                )
            )
            channels, bins = channels + growth, bins // 2
        self.middle = _TimeFrequencyBlock(channels, layers, bins, bottleneck)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for _ in range(levels):
            self.ups.append(
                nn.Sequential(
                    nn.ConvTranspose2d(channels, channels - growth, 2, stride=2),
                    nn.BatchNorm2d(channels - growth),
                    nn.ReLU(),
                )
            )
            channels, bins = channels - growth, bins * 2
            self.decoders.append(_TimeFrequencyBlock(channels, layers, bins, bottleneck))
        self.last = nn.Conv2d(channels, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Work as [batch, channels, time, frequency] so the dense maps act along frequency.
        h = self.first(x).transpose(-1, -2)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            h = encoder(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = decoder(up(h) + skip)
        # A residual path keeps the output on the input's scale whatever the random weights do.
        return x + self.last(h.transpose(-1, -2))


def music_like_spectrogram(params: MdxParams, seed: int, frames: int = _TRACE_FRAMES) -> torch.Tensor:
    """The model input of `frames` frames of a music-like stereo signal at peak 0.5: harmonic
    notes with 1/k partials over decaying noise hits, through the separator's own STFT and bin cut.

    Real spectrograms are heavy-tailed (a partial's bin is 100 times the median one): a network
    calibrated on Gaussian noise sees values far outside what its normalisations were set for."""
    rng = np.random.default_rng(seed)
    n = params.hop * (frames - 1)
    t = np.arange(n) / 44100
    audio = np.zeros((2, n))
    for _ in range(3):
        pitch = 55.0 * 2 ** rng.uniform(0, 4)
        pan = rng.uniform(0.2, 0.8)
        note = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 13))
        audio += np.array([[pan], [1 - pan]]) * note
    for start in rng.integers(0, n, 4):
        hit = np.zeros(n)
        hit[start:] = rng.standard_normal(n - start) * np.exp(-(t[: n - start]) * 30)
        audio += hit
    audio = (0.5 * audio / np.abs(audio).max()).astype(np.float32)
    spec = stft(audio, params.n_fft, params.hop)[:, : params.dim_f]
    x = np.stack([spec.real, spec.imag], axis=1).reshape(1, 4, params.dim_f, spec.shape[-1])
    x[:, :, :ZEROED_BINS] = 0
    return torch.from_numpy(np.ascontiguousarray(x))


def _initialise(model: TfcTdfUNet, params: MdxParams, seed: int) -> None:
    """Random weights, then BatchNorm statistics measured on one music-like spectrogram, as training
    would leave them: every normalisation then gives unit-scale activations on music, so the values
    stay finite through the U-Net (raw random weights overflow or sink into
    denormals, which would distort the timing the full size is for)."""
    generator = torch.Generator().manual_seed(seed)
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                fan_in = parameter[0].numel()
                parameter.normal_(0.0, fan_in**-0.5, generator=generator)
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: the one batch's own statistics
        model.train()
        example = torch.cat(
            [music_like_spectrogram(params, seed * CALIBRATION_SONGS + k) for k in range(CALIBRATION_SONGS)]
        )
        # In training mode the normalisations use this batch's statistics, which they now also
        # hold: the output is (to the unbiased-variance factor) what eval mode will give.
        correction = model(example) - example
        # The learned part makes a small correction to the residual, a hundredth of the input's
        # scale: its peaks (clicks where the random map is nearly constant over frequency) are
        # then below 0.2, and a stem of a mix at peak 0.5 stays below 0.9 (audio-separator
        # rescales louder stems on writing, musicsep clamps at 1).
        scale = 0.01 * example.std() / correction.std()
        model.last.weight.mul_(scale)
        model.last.bias.mul_(scale)
    model.eval()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch's OpenMP threads stall each other on a busy shared CPU (the build took 45 s instead
    of a few with two threads at load 9); one thread is steady. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mdx_unet(params: MdxParams, size: str = "full", seed: int = 0) -> TfcTdfUNet:
    """The random-weight network in eval mode (BatchNorm is then an affine map, as in an export)."""
    model = TfcTdfUNet(params.dim_f, **SIZES[size])
    _initialise(model, params, seed)
    return model


def parameter_count(params: MdxParams, size: str = "full") -> int:
    return sum(p.numel() for p in TfcTdfUNet(params.dim_f, **SIZES[size]).parameters())


def build_mdx_onnx(path: Path, params: MdxParams, size: str = "full", seed: int = 0) -> Path:
    """Write a random-weight MDX-Net graph with UVR's interface to `path` (name it as UVR does,
    e.g. `UVR-MDX-NET-Inst_HQ_4.onnx`); returns `path`."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    with _one_torch_thread():
        return _build(path, params, size, seed)


def _build(path: Path, params: MdxParams, size: str, seed: int) -> Path:
    model = mdx_unet(params, size, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Traced on a few frames (the full size takes ~30 s per chunk in torch on these CPUs): the
    # graph has no operator that depends on the frame count, which is then declared as dim_t.
    example = torch.zeros(1, 4, params.dim_f, _TRACE_FRAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    for value in (*graph.graph.input, *graph.graph.output):
        value.type.tensor_type.shape.dim[3].dim_value = params.dim_t
    del graph.graph.value_info[:]  # intermediate shapes were inferred for the traced frame count
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return path
