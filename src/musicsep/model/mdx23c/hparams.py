"""The MDX23C hyperparameters, read and checked from an MSST-format YAML mapping.

The network's shapes follow from these numbers alone, and a checkpoint trained with other numbers
can never load, so every value is checked here, before a tensor is built, and a config that is not
an MDX23C config is `ModelUnavailable` naming the key that is wrong. The key names are the ones
the public configs use (`model:` and `audio:` sections of e.g. UVR's `model_2_stem_full_band_8k.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from musicsep.model.errors import ModelUnavailable

#: The `model:` keys every TFC-TDF v3 config has (the architecture is undefined without any of them).
MODEL_KEYS = (
    "num_subbands",
    "num_scales",
    "scale",
    "num_blocks_per_scale",
    "num_channels",
    "growth",
    "bottleneck_factor",
    "norm",
    "act",
)
#: The `audio:` keys the spectrogram front end needs.
AUDIO_KEYS = ("n_fft", "hop_length", "dim_f", "num_channels")

_NORMS = ("BatchNorm", "InstanceNorm", "GroupNorm<N>", "any other value for none")


@dataclass(frozen=True)
class Mdx23cHyperparams:
    """What the TFC-TDF v3 network is built from (names as in the YAML, types checked)."""

    n_fft: int
    hop_length: int
    dim_f: int
    audio_channels: int
    num_subbands: int
    num_scales: int
    scale: tuple[int, int]  # (time, frequency) stride of each down/up-sampling step
    num_blocks_per_scale: int
    num_channels: int
    growth: int
    bottleneck_factor: int
    norm: str
    act: str
    targets: tuple[str, ...]

    @property
    def spectral_channels(self) -> int:
        """Input channels of the first convolution: real and imaginary part per audio channel and subband."""
        return self.num_subbands * self.audio_channels * 2

    @property
    def subband_bins(self) -> int:
        """Frequency bins of one subband, the width the first TDF layers see."""
        return self.dim_f // self.num_subbands

    def frames(self, samples: int) -> int:
        """STFT frames of a chunk of `samples` (centred STFT)."""
        return samples // self.hop_length + 1

    def check_chunk(self, chunk: int) -> None:
        """Refuse a chunk length whose frame count the U-Net cannot halve `num_scales` times."""
        stride = self.scale[0] ** self.num_scales
        frames = self.frames(chunk)
        if chunk <= 0 or frames % stride:
            raise ModelUnavailable(
                f"MDX23C config: a chunk of {chunk} samples gives {frames} STFT frames, which is not a "
                f"multiple of {stride} (scale {self.scale[0]} to the power num_scales {self.num_scales})"
            )


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = config.get(name)
    if not isinstance(section, Mapping):
        raise ModelUnavailable(f"not an MDX23C config: it has no '{name}' section")
    return section


def _positive_int(section: Mapping[str, Any], where: str, key: str) -> int:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelUnavailable(f"MDX23C config: {where}.{key} must be a positive integer, not {value!r}")
    return value


def _scale(model: Mapping[str, Any]) -> tuple[int, int]:
    value = model.get("scale")
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ModelUnavailable(f"MDX23C config: model.scale must be two positive integers, not {value!r}")
    return int(value[0]), int(value[1])


def _activation(model: Mapping[str, Any]) -> str:
    act = model.get("act")
    if act in ("gelu", "relu"):
        return act
    if isinstance(act, str) and act.startswith("elu"):
        try:
            float(act[3:])
        except ValueError:
            pass
        else:
            return act
    raise ModelUnavailable(f"MDX23C config: model.act must be gelu, relu or elu<alpha>, not {act!r}")


def _norm(model: Mapping[str, Any]) -> str:
    norm = model.get("norm")
    if not isinstance(norm, str):
        raise ModelUnavailable(f"MDX23C config: model.norm must be one of {', '.join(_NORMS)}, not {norm!r}")
    if "GroupNorm" in norm and not norm.replace("GroupNorm", "").isdigit():
        raise ModelUnavailable(f"MDX23C config: model.norm {norm!r} does not say its group count (GroupNorm<N>)")
    return norm


def _targets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The stems the network outputs, in output order: `target_instrument` alone when set (MSST's rule)."""
    training = _section(config, "training")
    target = training.get("target_instrument")
    if target:
        return (str(target),)
    instruments = training.get("instruments")
    if not isinstance(instruments, Sequence) or isinstance(instruments, str) or not instruments:
        raise ModelUnavailable("MDX23C config: training.instruments must list the model's stems")
    return tuple(str(name) for name in instruments)


def hyperparams_from_config(config: Mapping[str, Any]) -> Mdx23cHyperparams:
    """The checked hyperparameters of an MSST-format MDX23C config (the YAML as a mapping)."""
    if not isinstance(config, Mapping):
        raise ModelUnavailable("not an MDX23C config: the YAML is not a mapping")
    model = _section(config, "model")
    audio = _section(config, "audio")
    missing = [f"model.{k}" for k in MODEL_KEYS if k not in model] + [
        f"audio.{k}" for k in AUDIO_KEYS if k not in audio
    ]
    if missing:
        raise ModelUnavailable(f"not an MDX23C config: it lacks {', '.join(missing)}")
    params = Mdx23cHyperparams(
        n_fft=_positive_int(audio, "audio", "n_fft"),
        hop_length=_positive_int(audio, "audio", "hop_length"),
        dim_f=_positive_int(audio, "audio", "dim_f"),
        audio_channels=_positive_int(audio, "audio", "num_channels"),
        num_subbands=_positive_int(model, "model", "num_subbands"),
        num_scales=_positive_int(model, "model", "num_scales"),
        scale=_scale(model),
        num_blocks_per_scale=_positive_int(model, "model", "num_blocks_per_scale"),
        num_channels=_positive_int(model, "model", "num_channels"),
        growth=_positive_int(model, "model", "growth"),
        bottleneck_factor=_positive_int(model, "model", "bottleneck_factor"),
        norm=_norm(model),
        act=_activation(model),
        targets=_targets(config),
    )
    if params.dim_f > params.n_fft // 2 + 1:
        raise ModelUnavailable(
            f"MDX23C config: audio.dim_f {params.dim_f} exceeds the "
            f"{params.n_fft // 2 + 1} bins of n_fft {params.n_fft}"
        )
    stride = params.scale[1] ** params.num_scales
    if params.dim_f % (params.num_subbands * stride):
        raise ModelUnavailable(
            f"MDX23C config: audio.dim_f {params.dim_f} must be a multiple of num_subbands × scale^num_scales "
            f"({params.num_subbands * stride})"
        )
    if params.subband_bins // stride < params.bottleneck_factor:
        raise ModelUnavailable("MDX23C config: model.bottleneck_factor is larger than the narrowest frequency axis")
    return params
