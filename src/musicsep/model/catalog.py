"""The model catalog (`configs/models.yaml`): which names exist, their engine family, stems, files,
published quality and download sources, and a line for people.

Demucs entries carry only `stems`, `bag` and `description` (and `requires`); every other field has a
default that fits them, so the catalog reads the old entries unchanged. The UVR / MSST entries name
their weight files exactly as UVR and python-audio-separator do, so a folder either tool filled
works as `MUSICSEP_MODEL_REPO` as it is (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: Engine families the loader dispatches on (model/families.py).
ARCHES = ("demucs", "mdx", "bs_roformer", "mel_band_roformer", "mdx23c", "dsp", "ensemble")
#: Families whose weights are a PyTorch checkpoint beside an MSST-format YAML config.
CHECKPOINT_ARCHES = ("bs_roformer", "mel_band_roformer", "mdx23c")
#: Chunk rules of the checkpoint families (model/msst/chunking.py): `uvr` chunks as
#: python-audio-separator and UVR do, `msst` as MSST's reference `demix`.
CHUNKINGS = ("uvr", "msst")
#: The rule of a checkpoint entry that names none, and of a checkpoint the catalog does not know:
#: as most people run these models (audio-separator, UVR).
DEFAULT_CHUNKING = "uvr"

#: Where `base:` names in the catalog's `download` entries point (`musicsep models pull`).
DOWNLOAD_BASES = {
    "uvr": "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models",
    "uvr_configs": "https://raw.githubusercontent.com/TRvlvr/application_data/main/mdx_model_data/mdx_c_configs",
}


@dataclass(frozen=True)
class Quality:
    """A published figure: SDR in dB per stem (or `average`), on one basis (a test set), from one source."""

    sdr: dict[str, float]
    basis: str
    source: str

    def text(self) -> str:
        figures = ", ".join(f"{stem} {value:.2f} dB" for stem, value in self.sdr.items())
        return f"SDR {figures} ({self.basis}; {self.source})"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    stems: tuple[str, ...]
    bag: int
    description: str
    requires: tuple[str, ...] = field(default_factory=tuple)
    arch: str = "demucs"
    samplerate: int = 44100
    #: Accepted weight file names, the one `pull` writes first (UVR's name, then audio-separator's).
    weights: tuple[str, ...] = field(default_factory=tuple)
    #: Accepted config file names (MSST YAML), paired with `weights` by position when both have several.
    config: tuple[str, ...] = field(default_factory=tuple)
    #: Other names the model answers to (its file stems, as the other tools call it).
    aliases: tuple[str, ...] = field(default_factory=tuple)
    #: MDX-Net parameters (n_fft, dim_f, dim_t, compensate, primary; hop 1024 unless given).
    mdx: dict[str, Any] | None = None
    #: Samples per chunk for the MSST families (None: the config's own).
    chunk_size: int | None = None
    #: Chunks overlapping each sample for the MSST families (step = chunk // num_overlap; None: the config's).
    num_overlap: int | None = None
    #: Chunk rule of the MSST families (one of CHUNKINGS; None for the other families).
    chunking: str | None = None
    quality: Quality | None = None
    #: file name -> URL (`musicsep models pull`), and file name -> published sha256.
    downloads: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    #: Ensembles: member model names, algorithm, optional weights.
    members: tuple[str, ...] = field(default_factory=tuple)
    method: str = "avg_wave"
    member_weights: tuple[float, ...] | None = None

    @property
    def primary(self) -> str:
        """The stem the network produces itself (the other is mix minus it, for MDX-Net)."""
        if self.mdx and "primary" in self.mdx:
            return str(self.mdx["primary"])
        return self.stems[0]


def _catalog_text() -> str:
    # In a source checkout the catalog is the repository's configs/models.yaml; an installed wheel
    # carries a copy as package data (see pyproject's force-include).
    checkout = Path(__file__).resolve().parents[3] / "configs" / "models.yaml"
    if checkout.is_file():
        return checkout.read_text()
    return resources.files("musicsep").joinpath("_configs/models.yaml").read_text()


def _downloads(entry: dict) -> dict[str, str]:
    """file name -> URL: each weight file under `base`, each config under `config_base`, then
    explicit `urls` (files whose source name differs from the name they are saved under)."""
    spec = entry.get("download") or {}
    urls: dict[str, str] = {}
    weights, configs = list(entry.get("weights", ())), list(entry.get("config", ()))
    if "base" in spec and weights:
        urls[weights[0]] = f"{DOWNLOAD_BASES[spec['base']]}/{weights[0]}"
    if "config_base" in spec and configs:
        urls[configs[0]] = f"{DOWNLOAD_BASES[spec['config_base']]}/{configs[0]}"
    urls.update(spec.get("urls") or {})
    return urls


def _info(name: str, entry: dict) -> ModelInfo:
    quality = entry.get("quality")
    weights = entry.get("weights")
    arch = str(entry.get("arch", "demucs"))
    return ModelInfo(
        name=name,
        stems=tuple(entry["stems"]),
        bag=int(entry.get("bag", 1)),
        description=entry["description"],
        requires=tuple(entry.get("requires", ())),
        arch=arch,
        samplerate=int(entry.get("samplerate", 44100)),
        weights=tuple(entry.get("weights", ())),
        config=tuple(entry.get("config", ())),
        aliases=tuple(entry.get("aliases", ())),
        mdx=dict(entry["mdx"]) if entry.get("mdx") else None,
        chunk_size=int(entry["chunk_size"]) if entry.get("chunk_size") else None,
        num_overlap=int(entry["num_overlap"]) if entry.get("num_overlap") else None,
        chunking=str(entry.get("chunking") or DEFAULT_CHUNKING) if arch in CHECKPOINT_ARCHES else None,
        quality=Quality({k: float(v) for k, v in quality["sdr"].items()}, str(quality["basis"]), str(quality["source"]))
        if quality
        else None,
        downloads=_downloads(entry) if weights else {},
        sha256=dict(entry.get("sha256") or {}),
        members=tuple(entry.get("members", ())),
        method=str(entry.get("method", "avg_wave")),
        member_weights=tuple(map(float, entry["member_weights"])) if entry.get("member_weights") else None,
    )


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelInfo]:
    raw = yaml.safe_load(_catalog_text())["models"]
    catalog = {name: _info(name, entry) for name, entry in raw.items()}
    unknown = [info.name for info in catalog.values() if info.arch not in ARCHES]
    if unknown:
        raise ValueError(f"configs/models.yaml: unknown arch for {', '.join(unknown)}")
    wrong = [info.name for info in catalog.values() if info.chunking is not None and info.chunking not in CHUNKINGS]
    if wrong:
        raise ValueError(f"configs/models.yaml: chunking must be one of {', '.join(CHUNKINGS)} ({', '.join(wrong)})")
    return catalog


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    """Other names (file stems, file names) -> catalog name."""
    table: dict[str, str] = {}
    for info in load_catalog().values():
        for other in (*info.aliases, *info.weights):
            table.setdefault(other, info.name)
    return table


def canonical_name(name: str) -> str:
    """The catalog's name for `name` (e.g. `UVR-MDX-NET-Inst_HQ_4.onnx` -> `UVR-MDX-NET-Inst_HQ_4`);
    `name` itself when it is a catalog name or no alias."""
    if name in load_catalog():
        return name
    return _aliases().get(name, name)
