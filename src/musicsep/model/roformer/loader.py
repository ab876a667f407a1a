"""BS-RoFormer and Mel-Band RoFormer checkpoints (MSST format) as streaming separators.

The networks come from lucidrains' `bs-roformer` package, pinned at 0.3.10, rather than from code
of our own: its parameter names and shapes are those of MSST's `BSRoformer` / `MelBandRoformer`
(every key and shape equal for the configs of ViperX 1297/1296/937, Kim's vocals and the
karaoke model), and with the same weights its output equals MSST's bit for bit when MSST's
`zero_dc` is off. Later releases do not fit: 0.4.x matches the BS model only, 1.x renames the
layers. The public checkpoints were trained before MSST added `zero_dc` (September 2025, on by
default there), so musicsep runs them without DC zeroing, like the code they were trained with.

MSST added options 0.3.10 does not have. A config that sets one of them to anything but the
value 0.3.10 behaves like (`_PACKAGE_BEHAVIOUR`) needs MSST's own code, and is refused by name.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from musicsep.model.errors import ModelUnavailable
from musicsep.model.msst.checkpoint import load_strictly, read_state_dict
from musicsep.model.msst.config import MsstConfig, load_msst_config
from musicsep.model.msst.stream import MsstSeparator, build_msst_separator

ARCHITECTURES = ("bs_roformer", "mel_band_roformer")

#: MSST-only model keys and the value at which 0.3.10 computes the same thing.
_PACKAGE_BEHAVIOUR = {
    "linear_transformer_depth": 0,
    "zero_dc": False,
    "mlp_expansion_factor": 4,
    "skip_connection": False,
    "sage_attention": False,
    "use_pope": False,
    "skip_final_norm": False,
}
#: MSST-only keys that change training, not the forward pass (gradient checkpointing).
_TRAINING_ONLY = frozenset({"use_torch_checkpoint"})
#: Package arguments a YAML file cannot give (functions).
_NOT_FROM_YAML = frozenset({"self", "stft_window_fn", "multi_stft_window_fn"})


def roformer_class(arch: str):
    import bs_roformer

    return bs_roformer.BSRoformer if arch == "bs_roformer" else bs_roformer.MelBandRoformer


def roformer_arch(config: MsstConfig, arch: str | None = None) -> str:
    """`bs_roformer` or `mel_band_roformer` (MSST's model_type names): given, or from the keys."""
    if arch is not None:
        if arch not in ARCHITECTURES:
            raise ModelUnavailable(f"unknown RoFormer architecture '{arch}'; known: {', '.join(ARCHITECTURES)}")
        return arch
    keys = config.model
    if ("freqs_per_bands" in keys) == ("num_bands" in keys):
        raise ModelUnavailable(
            f"{config.name} is not a RoFormer config: its model section must have either freqs_per_bands "
            "(BS-RoFormer) or num_bands (Mel-Band RoFormer)"
        )
    return "bs_roformer" if "freqs_per_bands" in keys else "mel_band_roformer"


def roformer_kwargs(config: MsstConfig, arch: str) -> dict:
    """The package's keyword arguments from the config's model section, refusing what it lacks."""
    accepted = set(inspect.signature(roformer_class(arch).__init__).parameters) - _NOT_FROM_YAML
    kwargs = {}
    for key, value in config.model.items():
        if key in accepted:
            kwargs[key] = value
        elif key in _PACKAGE_BEHAVIOUR:
            if value != _PACKAGE_BEHAVIOUR[key]:
                raise ModelUnavailable(
                    f"{config.name} sets model.{key}: {value!r}, which the RoFormer code musicsep uses "
                    f"(bs-roformer 0.3.10) does not support (only {_PACKAGE_BEHAVIOUR[key]!r})"
                )
        elif key not in _TRAINING_ONLY:
            raise ModelUnavailable(
                f"{config.name} has model.{key}, which the RoFormer code musicsep uses (bs-roformer 0.3.10) "
                "does not know"
            )
    stereo = bool(kwargs.get("stereo", False))
    if (2 if stereo else 1) != config.num_channels:
        raise ModelUnavailable(
            f"{config.name} is inconsistent: model.stereo is {stereo} but audio.num_channels is {config.num_channels}"
        )
    stems = int(kwargs.get("num_stems", 1))
    if stems != len(config.model_outputs):
        raise ModelUnavailable(
            f"{config.name} is inconsistent: model.num_stems is {stems} but the training section names "
            f"{len(config.model_outputs)} output(s)"
        )
    return kwargs


def build_roformer(config: MsstConfig, arch: str | None = None) -> torch.nn.Module:
    """The network a config describes, randomly initialised (weights are loaded afterwards)."""
    arch = roformer_arch(config, arch)
    kwargs = roformer_kwargs(config, arch)
    try:
        return roformer_class(arch)(**kwargs)
    except Exception as exc:  # beartype's type errors, the package's asserts (band sizes), bad dims
        raise ModelUnavailable(f"{config.name} does not describe a valid {arch}: {exc}") from exc


def load_roformer(
    checkpoint: Path,
    config: Path,
    *,
    name: str,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    arch: str | None = None,
    chunk_size: int | None = None,
    num_overlap: int | None = None,
    chunking: str = "msst",
    runtime: str = "torch",
    runtime_cache: Path | None = None,
) -> MsstSeparator:
    """A streaming separator for a RoFormer `.ckpt` and its MSST YAML, loaded with strict keys.

    `runtime` (torch, openvino, auto) is the CPU runtime of the network (roformer/runtimes.py);
    the separator's `runtime` says which runs it.

    `chunking` is the chunk rule (musicsep.model.msst.chunking): MSST's unless asked; the catalog
    asks for python-audio-separator's and UVR's (`uvr`) through model/families.py.
    Every failure a user's files can cause (a YAML that is not a model config, a key 0.3.10 lacks,
    a checkpoint that is truncated or belongs to another config) is `ModelUnavailable`.
    """
    msst_config = load_msst_config(Path(config))
    module = build_roformer(msst_config, arch)
    state = read_state_dict(Path(checkpoint))
    load_strictly(module, state, Path(checkpoint).name, msst_config.name)
    del state
    separator = build_msst_separator(
        module,
        msst_config,
        name=name,
        device=device,
        precision=precision,
        chunk_size=chunk_size,
        num_overlap=num_overlap,
        chunking=chunking,
    )
    del module  # the separator's now: OpenVINO may replace it (roformer/runtimes.py frees it then)
    if runtime != "torch":
        from musicsep.model.roformer.runtimes import apply_runtime

        apply_runtime(separator, Path(checkpoint), Path(config), runtime=runtime, cache_dir=runtime_cache)
    return separator
