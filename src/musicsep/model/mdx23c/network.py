"""TFC-TDF-UNet v3, the MDX23C network (Kim et al., KUIELab, Sound Demixing Challenge 2023).

Written from the paper and from the layout of the public checkpoints: the module attribute names
and the positions inside each `nn.Sequential` are what make the state-dict keys
(`encoder_blocks.0.tfc_tdf.blocks.1.tdf.2.weight`, ...), so they are fixed by the checkpoints;
the rest is ours.

The shape of the computation:
- the real spectrogram (`spectral.py`) is split into `num_subbands` bands stacked as channels,
- a 1x1 convolution lifts it to `num_channels`, then the time and frequency axes are swapped so
  that the TDF layers (fully connected over frequency) act on the last axis,
- a U-Net of `num_scales` levels: each level is a stack of TFC-TDF layers (3x3 convolution, a
  bottlenecked two-layer frequency MLP added as a residual, another 3x3 convolution, plus a 1x1
  shortcut), then a strided convolution that divides (time, frequency) by `scale` and adds
  `growth` channels; the decoder mirrors it with transposed convolutions and skip concatenation,
- the decoder output, multiplied by the first convolution's output, is concatenated with the input
  spectrogram and mapped by two 1x1 convolutions to one spectrogram per target stem.
Every convolution and linear layer has no bias; normalisation and activation come before each
weight layer ("pre-activation"), so in each Sequential the weights sit at index 2 (and 5 in TDF).
"""

from __future__ import annotations

import torch
from torch import nn

from musicsep.model.mdx23c.hparams import Mdx23cHyperparams
from musicsep.model.mdx23c.spectral import RealSpectrogram


def _norm(kind: str, channels: int) -> nn.Module:
    """The normalisation a config names (MSST's spellings); an unknown name means none."""
    if kind == "BatchNorm":
        return nn.BatchNorm2d(channels)
    if kind == "InstanceNorm":
        return nn.InstanceNorm2d(channels, affine=True)
    if "GroupNorm" in kind:
        return nn.GroupNorm(int(kind.replace("GroupNorm", "")), channels)
    return nn.Identity()


def _activation(kind: str) -> nn.Module:
    if kind == "gelu":
        return nn.GELU()
    if kind == "relu":
        return nn.ReLU()
    return nn.ELU(float(kind[3:]))  # "elu<alpha>", checked in hparams


def _pre_activated(params: Mdx23cHyperparams, channels: int, layer: nn.Module) -> nn.Sequential:
    """norm -> activation -> `layer`: index 0, 1, 2, as the checkpoints number them."""
    return nn.Sequential(_norm(params.norm, channels), _activation(params.act), layer)


class TfcTdfLayer(nn.Module):
    """One TFC-TDF layer on `(batch, channels, frames, bins)`: conv, frequency MLP residual, conv, shortcut."""

    def __init__(self, params: Mdx23cHyperparams, in_channels: int, channels: int, bins: int) -> None:
        super().__init__()
        hidden = bins // params.bottleneck_factor
        self.tfc1 = _pre_activated(params, in_channels, nn.Conv2d(in_channels, channels, 3, padding=1, bias=False))
        self.tdf = nn.Sequential(
            *_pre_activated(params, channels, nn.Linear(bins, hidden, bias=False)),
            *_pre_activated(params, channels, nn.Linear(hidden, bins, bias=False)),
        )
        self.tfc2 = _pre_activated(params, channels, nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self.shortcut = nn.Conv2d(in_channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x)
        x = self.tfc1(x)
        x = x + self.tdf(x)
        return self.tfc2(x) + skip


class TfcTdfStack(nn.Module):
    """`num_blocks_per_scale` TFC-TDF layers; the first one changes the channel count."""

    def __init__(self, params: Mdx23cHyperparams, in_channels: int, channels: int, bins: int) -> None:
        super().__init__()
        widths = [in_channels] + [channels] * (params.num_blocks_per_scale - 1)
        self.blocks = nn.ModuleList(TfcTdfLayer(params, width, channels, bins) for width in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.blocks:
            x = layer(x)
        return x


class Resample(nn.Module):
    """Strided (down) or transposed (up) convolution by `scale` on (frames, bins), pre-activated."""

    def __init__(self, params: Mdx23cHyperparams, in_channels: int, out_channels: int, *, up: bool) -> None:
        super().__init__()
        kind = nn.ConvTranspose2d if up else nn.Conv2d
        self.conv = _pre_activated(
            params,
            in_channels,
            kind(in_channels, out_channels, kernel_size=params.scale, stride=params.scale, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class EncoderLevel(nn.Module):
    def __init__(self, params: Mdx23cHyperparams, channels: int, bins: int) -> None:
        super().__init__()
        self.tfc_tdf = TfcTdfStack(params, channels, channels, bins)
        self.downscale = Resample(params, channels, channels + params.growth, up=False)


class DecoderLevel(nn.Module):
    def __init__(self, params: Mdx23cHyperparams, channels: int, bins: int) -> None:
        """`channels` and `bins` are this level's output size (the matching encoder level's)."""
        super().__init__()
        self.upscale = Resample(params, channels + params.growth, channels, up=True)
        self.tfc_tdf = TfcTdfStack(params, 2 * channels, channels, bins)


class TfcTdfNet(nn.Module):
    """Audio `(batch, channels, samples)` -> stems `(batch, len(targets), channels, samples)`."""

    def __init__(self, params: Mdx23cHyperparams) -> None:
        super().__init__()
        self.params = params
        inputs = params.spectral_channels
        widths = [params.num_channels + level * params.growth for level in range(params.num_scales + 1)]
        bins = [params.subband_bins // params.scale[1] ** level for level in range(params.num_scales + 1)]

        self.first_conv = nn.Conv2d(inputs, widths[0], 1, bias=False)
        self.encoder_blocks = nn.ModuleList(EncoderLevel(params, widths[i], bins[i]) for i in range(params.num_scales))
        self.bottleneck_block = TfcTdfStack(params, widths[-1], widths[-1], bins[-1])
        self.decoder_blocks = nn.ModuleList(
            DecoderLevel(params, widths[i], bins[i]) for i in reversed(range(params.num_scales))
        )
        self.final_conv = nn.Sequential(
            nn.Conv2d(widths[0] + inputs, widths[0], 1, bias=False),
            _activation(params.act),
            nn.Conv2d(widths[0], len(params.targets) * inputs, 1, bias=False),
        )
        self.stft = RealSpectrogram(params.n_fft, params.hop_length, params.dim_f)

    def _split_subbands(self, spec: torch.Tensor) -> torch.Tensor:
        """(b, c, k*f, t) -> (b, c*k, f, t): band j of channel i becomes channel i*k + j."""
        b, c, f, t = spec.shape
        return spec.reshape(b, c * self.params.num_subbands, f // self.params.num_subbands, t)

    def _join_subbands(self, spec: torch.Tensor) -> torch.Tensor:
        b, c, f, t = spec.shape
        return spec.reshape(b, c // self.params.num_subbands, f * self.params.num_subbands, t)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        samples = audio.shape[-1]
        mix = self._split_subbands(self.stft(audio))
        lifted = self.first_conv(mix)
        x = lifted.transpose(-1, -2)  # (batch, channels, frames, bins): TDF layers act on bins

        skips = []
        for level in self.encoder_blocks:
            x = level.tfc_tdf(x)
            skips.append(x)
            x = level.downscale(x)
        x = self.bottleneck_block(x)
        for level in self.decoder_blocks:
            x = level.tfc_tdf(torch.cat([level.upscale(x), skips.pop()], 1))

        x = x.transpose(-1, -2) * lifted
        spec = self._join_subbands(self.final_conv(torch.cat([mix, x], 1)))
        b, c, f, t = spec.shape
        return self.stft.inverse(
            spec.reshape(b, len(self.params.targets), c // len(self.params.targets), f, t), samples
        )
