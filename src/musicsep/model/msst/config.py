"""MSST model configs: the YAML files that come with MDX23C and RoFormer checkpoints.

The community format is ZFTurbo's Music-Source-Separation-Training (MSST): sections `audio`,
`model`, `training` and `inference`. The files use PyYAML's `!!python/tuple` tag for tuples
(`freqs_per_bands`, `multi_stft_resolutions_window_sizes`), which only PyYAML's unsafe loaders
know; they also build arbitrary Python objects from other `!!python/...` tags, so a model folder
someone else filled could run code. `_TupleSafeLoader` is the safe loader plus that one tag.

Stem names (`musicsep_stem_names`): MSST instrument names are lower-cased, and runs of anything
other than `a-z`, `0-9` become `_` (`Lead Vocals` -> `lead_vocals`), because stem names become
file names. In a two-instrument config where one instrument is `vocals`, the other one is what
people call the instrumental, whatever the trainer named it: `Instrumental` and `other` both
become `instrumental` (Kim's and ViperX's configs name it `Instrumental`, MSST's own vocals
configs `other`). In configs with more instruments `other` stays `other` (drums, bass, other,
vocals).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from musicsep.model.errors import ModelUnavailable


class _TupleSafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that also reads `!!python/tuple` sequences (as tuples), nothing else."""


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "a !!python/tuple must be a sequence", node.start_mark)
    return tuple(loader.construct_sequence(node, deep=True))


_TupleSafeLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)

_REQUIRED_SECTIONS = ("audio", "model", "training", "inference")


def _not_a_model_config(name: str, why: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"{name} is not a model config ({why}); it must be the YAML file in the "
        "Music-Source-Separation-Training format that came with the checkpoint"
    )


@dataclass(frozen=True)
class MsstConfig:
    """A validated MSST config; `raw` keeps every section as read."""

    name: str  # the file's name (never its folder: messages must not show server paths)
    raw: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        """The architecture's keyword arguments, as the config gives them."""
        return dict(self.raw["model"])

    @property
    def chunk_size(self) -> int:
        """Samples per chunk: `inference.chunk_size`, else `audio.chunk_size` (MSST's `demix`)."""
        inference = self.raw["inference"]
        return int(inference["chunk_size"] if "chunk_size" in inference else self.raw["audio"]["chunk_size"])

    @property
    def uvr_chunk_size(self) -> int:
        """Samples per chunk as python-audio-separator and UVR compute it: the STFT hop
        (`model.stft_hop_length`, else `audio.hop_length`) x (`inference.dim_t` - 1); `chunk_size`
        for a config without those keys (MSST's own configs often lack `inference.dim_t`)."""
        hop = self.raw["model"].get("stft_hop_length", self.raw["audio"].get("hop_length"))
        dim_t = self.raw["inference"].get("dim_t")
        if _positive_int(hop) and _positive_int(dim_t) and dim_t > 1:
            return int(hop) * (int(dim_t) - 1)
        return self.chunk_size

    @property
    def stft_size(self) -> int:
        """The network's STFT size (`model.stft_n_fft`, else `audio.n_fft`; 0 when neither is given):
        its input must be at least this long."""
        size = self.raw["model"].get("stft_n_fft", self.raw["audio"].get("n_fft"))
        return int(size) if _positive_int(size) else 0

    @property
    def num_overlap(self) -> int:
        return int(self.raw["inference"]["num_overlap"])

    @property
    def batch_size(self) -> int:
        return int(self.raw["inference"].get("batch_size", 1))

    @property
    def normalize(self) -> bool:
        """`inference.normalize`: the whole track scaled by its mono mean/std before the model."""
        return self.raw["inference"].get("normalize") is True

    @property
    def samplerate(self) -> int:
        return int(self.raw["audio"].get("sample_rate", 44100))

    @property
    def num_channels(self) -> int:
        return int(self.raw["audio"].get("num_channels", 2))

    @property
    def instruments(self) -> list[str]:
        """Every instrument the model was trained on, as the config names them."""
        return [str(item) for item in self.raw["training"]["instruments"]]

    @property
    def target_instrument(self) -> str | None:
        """The single stem a single-target model outputs (the other is the mix minus it)."""
        target = self.raw["training"].get("target_instrument")
        return str(target) if target else None

    @property
    def model_outputs(self) -> list[str]:
        """What the network returns, in order: the target alone, or every instrument (MSST's
        `prefer_target_instrument`)."""
        target = self.target_instrument
        return [target] if target else self.instruments


def load_msst_config(path: Path) -> MsstConfig:
    """Read and validate an MSST YAML; `ModelUnavailable` for anything that is not one."""
    name = Path(path).name
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"the model config {name} cannot be read ({exc.strerror or 'I/O error'})") from exc
    try:
        raw = yaml.load(text, Loader=_TupleSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _not_a_model_config(name, "it is not valid YAML, or uses tags other than !!python/tuple") from exc
    return validate_msst_config(raw, name)


def validate_msst_config(raw: object, name: str) -> MsstConfig:
    """Check the sections and values the engine needs, so a wrong file fails here, not mid-track."""
    if not isinstance(raw, dict):
        raise _not_a_model_config(name, "it does not hold a mapping of sections")
    missing = [section for section in _REQUIRED_SECTIONS if not isinstance(raw.get(section), dict)]
    if missing:
        raise _not_a_model_config(name, f"no '{missing[0]}' section")
    inference, audio, training = raw["inference"], raw["audio"], raw["training"]
    chunk = inference.get("chunk_size", audio.get("chunk_size"))
    if not _positive_int(chunk):
        raise _not_a_model_config(name, "no positive chunk_size in 'inference' or 'audio'")
    overlap = inference.get("num_overlap")
    if not _positive_int(overlap) or overlap > chunk:
        raise _not_a_model_config(name, "inference.num_overlap must be a positive integer below chunk_size")
    for section, key in (("audio", "sample_rate"), ("audio", "num_channels"), ("inference", "batch_size")):
        if key in raw[section] and not _positive_int(raw[section][key]):
            raise _not_a_model_config(name, f"{section}.{key} must be a positive integer")
    instruments = training.get("instruments")
    if (
        not isinstance(instruments, list)
        or not instruments
        or not all(isinstance(item, str) and item.strip() for item in instruments)
    ):
        raise _not_a_model_config(name, "training.instruments must be a list of names")
    target = training.get("target_instrument")
    if target and target not in instruments:
        raise _not_a_model_config(name, f"target_instrument '{target}' is not among training.instruments")
    config = MsstConfig(name, raw)
    names = musicsep_stem_names(config.instruments)
    if len(set(names)) != len(names):
        raise _not_a_model_config(name, "two instruments have the same name")
    return config


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


_NOT_NAME = re.compile(r"[^a-z0-9]+")


def musicsep_stem_name(instrument: str, instruments: list[str]) -> str:
    """musicsep's name for one MSST instrument (the rule is in this module's docstring)."""
    name = _NOT_NAME.sub("_", instrument.strip().lower()).strip("_") or "stem"
    lowered = [_NOT_NAME.sub("_", item.strip().lower()).strip("_") for item in instruments]
    if name in ("instrumental", "instrument", "inst"):
        return "instrumental"
    if name == "other" and len(instruments) == 2 and "vocals" in lowered:
        return "instrumental"
    return name


def musicsep_stem_names(instruments: list[str]) -> list[str]:
    return [musicsep_stem_name(item, instruments) for item in instruments]
