"""Finding and loading model weights, through Demucs 4.1's own loading code.

A model name is a name (model/names.py), looked up in two places only: the local folder
(`MUSICSEP_MODEL_REPO`: Demucs's `.th` + `.yaml` bag files, or `.safetensors` + `.yaml` as on the
Hugging Face hub; model/folder.py) and the catalog. A catalog name not in the folder comes from
the Hugging Face cache, Demucs's legacy torch-hub cache, then a download (unless offline).
Whether a model is known or on this machine is answered from file names, never by loading it.
Loaded models are cached per (name, device, precision, stems), least recently used out first
when their weights pass `MUSICSEP_MODEL_CACHE_MB` (model/cache.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicsep.model.cache import ModelCache, model_bytes
from musicsep.model.catalog import load_catalog
from musicsep.model.devices import resolve_device, resolve_precision
from musicsep.model.errors import ModelUnavailable
from musicsep.model.folder import Listing, ModelFolder
from musicsep.model.names import InvalidModelName, UnknownModel, is_model_name, model_name

__all__ = ["HOW_TO_GET_WEIGHTS", "InvalidModelName", "ModelLoader", "UnknownModel", "resolve_device",
           "resolve_precision"]

#: Weights kept loaded by default (`MUSICSEP_MODEL_CACHE_MB`): two of the largest catalog bags in
#: fp32 (docs/architecture.md, "Loading").
DEFAULT_CACHE_MB = 4096.0

HOW_TO_GET_WEIGHTS = (
    "run `musicsep models pull {name}` on a machine with internet access (it fills the "
    "Hugging Face cache), or put the model's .yaml and weight files in a folder and set "
    "MUSICSEP_MODEL_REPO to it"
)


def _load_member(sig: str, folder: Path, listing: Listing | None = None):
    """One model of the folder by signature, or None when the folder has no such file."""
    from demucs.hf import load_safetensors_model
    from demucs.repo import LocalRepo

    if not is_model_name(sig):  # a bag's member named by a path
        return None
    listing = listing if listing is not None else ModelFolder(folder).listing()
    path = listing.weights(sig)
    if path is None:
        return None
    if path.suffix == ".safetensors":
        return load_safetensors_model(path)
    return LocalRepo(folder).get_model(sig)  # the same `<sig>-<checksum>.th`; checks the checksum


def needed_members(bag: dict, sources: Sequence[str], stems: Sequence[str] | None) -> list[int]:
    """Indices of the bag members that contribute to `stems` (every member when in doubt).

    htdemucs_ft is four models, each weighted 1 for one stem and 0 for the others: a request for
    vocals needs one of them, so the other three are not even read from disk.
    """
    everyone = list(range(len(bag["models"])))
    weights = bag.get("weights")
    if not stems or weights is None or any(stem not in sources for stem in stems):
        return everyone
    columns = [list(sources).index(stem) for stem in stems]
    return [i for i in everyone if any(weights[i][k] for k in columns)] or everyone


def _bag(name: str, bag: dict, load, stems: Sequence[str] | None):
    """A BagOfModels of the members `stems` need, each loaded once by `load(sig)`.

    The weight matrix's columns follow the members' `sources`; the catalog says them without
    loading anything, and for a bag it does not know, the first member is loaded to read them.
    """
    from demucs.apply import BagOfModels

    loaded: dict[int, object] = {}

    def member(i: int):
        if i not in loaded:
            loaded[i] = load(bag["models"][i])
        return loaded[i]

    info = load_catalog().get(name)
    sources = info.stems if info else tuple(member(0).sources)
    keep = needed_members(bag, sources, stems)
    if tuple(member(keep[0]).sources) != tuple(sources):  # the catalog disagrees with the files
        keep = list(range(len(bag["models"])))
    weights = bag.get("weights")
    return BagOfModels([member(i) for i in keep], [weights[i] for i in keep] if weights else None,
                       bag.get("segment"))


def load_from_folder(name: str, folder: Path, stems: Sequence[str] | None = None):
    """A bag `<name>.yaml` whose members are `.safetensors` or `.th` files, or a single model;
    None when the folder has neither. Only files the listing found (inside the folder) are read."""
    import yaml

    listing = ModelFolder(folder).listing()
    bag_file = listing.bags.get(name)
    if bag_file is not None:
        def load(sig: str):
            member = _load_member(sig, folder, listing)
            if member is None:
                raise ModelUnavailable(
                    f"model '{name}' lists weights {sig!r} that are not in the model folder; "
                    + HOW_TO_GET_WEIGHTS.format(name=name))
            return member

        return _bag(name, yaml.safe_load(bag_file.read_text()), load, stems)
    return _load_member(name, folder, listing)


def _folder_has(name: str, listing: Listing) -> bool:
    """Every weight file the model needs is in the folder (its bag file read, no weights)."""
    import yaml

    if name not in listing.bags:
        return listing.weights(name) is not None
    try:
        members = list(yaml.safe_load(listing.bags[name].read_text())["models"])
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return False
    return bool(members) and all(isinstance(sig, str) and listing.weights(sig) is not None for sig in members)


def load_from_caches(name: str, stems: Sequence[str] | None = None):
    """The Hugging Face cache, then Demucs's legacy torch-hub cache; never the network."""
    import torch
    import yaml
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name, load_safetensors_model
    from demucs.pretrained import REMOTE_ROOT
    from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id = f"{DEFAULT_NAMESPACE}/{hf_repo_name(name)}"
    try:
        with open(hf_hub_download(repo_id, f"{name}.yaml", local_files_only=True)) as file:
            bag = yaml.safe_load(file)
        return _bag(name, bag, lambda sig: load_safetensors_model(
            hf_hub_download(repo_id, f"{model_name(sig)}.safetensors", local_files_only=True)), stems)
    except LocalEntryNotFoundError:
        pass
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if checkpoints.is_dir():
        local = LocalRepo(checkpoints)
        legacy = AnyModelRepo(local, BagOnlyRepo(REMOTE_ROOT, local))
        try:
            return legacy.get_model(name)
        except Exception:  # a partial legacy cache is the same as none: try the next source
            return None
    return None


def in_caches(name: str) -> bool:
    """Whether `load_from_caches` would find every file of a catalog model; reads no weights."""
    import torch
    import yaml
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
    from demucs.pretrained import REMOTE_ROOT
    from demucs.repo import LocalRepo
    from huggingface_hub import try_to_load_from_cache

    repo_id = f"{DEFAULT_NAMESPACE}/{hf_repo_name(name)}"
    bag_file = try_to_load_from_cache(repo_id, f"{name}.yaml")
    if isinstance(bag_file, str):
        members = yaml.safe_load(Path(bag_file).read_text())["models"]
        return all(isinstance(try_to_load_from_cache(repo_id, f"{model_name(sig)}.safetensors"), str)
                   for sig in members)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if not checkpoints.is_dir():
        return False
    local = LocalRepo(checkpoints)
    if local.has_model(name):
        return True
    remote_bag = REMOTE_ROOT / f"{name}.yaml"
    return remote_bag.is_file() and all(local.has_model(sig) for sig in
                                        yaml.safe_load(remote_bag.read_text())["models"])


def download(name: str):
    """Demucs's own `get_model`: the Hugging Face hub, then the legacy repository."""
    from demucs.pretrained import get_model

    return get_model(name)


class ModelLoader:
    """Loads models once and hands out cached separators; safe to share between threads.

    `fallback` is the chain tried, in order, when a requested model's weights are unavailable
    (`MUSICSEP_FALLBACK`, e.g. `htdemucs,dsp`); `dsp` needs no weights and always loads.
    `cache_mb` bounds the weights kept loaded (`MUSICSEP_MODEL_CACHE_MB`, model/cache.py).
    """

    def __init__(self, repo: Path | None = None, offline: bool = False,
                 fallback: Sequence[str] = (), cache_mb: float = DEFAULT_CACHE_MB) -> None:
        self.repo = Path(repo) if repo else None
        self.offline = offline
        self.fallback = tuple(fallback)
        self.cache_budget_bytes = int(cache_mb * 2**20)
        self._cache = ModelCache(self.cache_budget_bytes)
        self._failures: dict[str, ModelUnavailable] = {}
        # One load at a time: loads are the memory peaks, and two at once could pass the budget.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> ModelLoader:
        return cls(repo=settings.model_repo, offline=settings.offline, fallback=settings.fallback_chain,
                   cache_mb=settings.model_cache_mb)

    def get(self, name: str, device: str = "auto", precision: str = "fp32", stems: Sequence[str] | None = None):
        """A cached separator. With `stems`, a bag may load only the members those stems need:
        the separator then serves those stems only (the CLI's one-request-per-process case;
        the server keeps whole models, shared by every request)."""
        name = model_name(name)
        if name == "dsp":
            return self._get_dsp()
        import torch

        from musicsep.model.recovery import RecoveringSeparator

        torch_device = resolve_device(device)
        precision = resolve_precision(precision, torch_device)
        key = (name, str(torch_device), precision, frozenset(stems) if stems else None)
        with self._lock:
            separator = self._cache.get(key)
            if separator is not None and separator.device == torch_device:
                return separator
            if separator is not None:
                # Out of device memory, it moved to the CPU mid-track (model/recovery.py). The
                # device is asked for again: it is loaded there again, not served from the CPU
                # (a fallback is one job's recovery, not the device's end). A job still running
                # on the CPU copy keeps it until it ends.
                self._cache.drop([key])
            # A model found missing stays missing for this loader's life (a download can take
            # 30 s to fail; it is not retried for every job).
            if name in self._failures:
                raise self._failures[name]
            try:
                model = self._load(name, stems)
            except ModelUnavailable as exc:
                self._failures[name] = exc
                raise
            model.to(torch_device).eval()
            if torch_device.type == "cpu" and precision == "fp32":
                # oneDNN runs HTDemucs's 2-D (frequency branch) convolutions and transposed
                # convolutions 5-12% faster from channels-last weights in fp32; the outputs
                # move by float rounding only (3e-7). Under bf16 autocast it is slower.
                model.to(memory_format=torch.channels_last)
            separator = RecoveringSeparator(name, model, torch_device, precision)
            evicted = self._cache.put(key, separator, model_bytes(model))
            del model
            if any(key[1].startswith("cuda") for key in evicted):
                torch.cuda.empty_cache()  # hand the freed weights back to the device
            return separator

    def resolve(self, name: str, device: str = "auto", precision: str = "fp32",
                stems: Sequence[str] | None = None):
        """`(separator, fallback_reason)`: the requested model, or the first of the fallback
        chain that loads, with the reason in plain words; raises when none does."""
        try:
            return self.get(name, device, precision, stems), None
        except UnknownModel:
            raise
        except ModelUnavailable as first:
            for candidate in self.fallback:
                if candidate == name:
                    continue
                try:
                    separator = self.get(candidate, device, precision)
                except ModelUnavailable:
                    continue
                return separator, f"{first.message} — used '{candidate}' instead"
            raise

    def _get_dsp(self):
        from musicsep.model.dsp import DspSeparator

        key = ("dsp", "cpu", "fp32", None)
        with self._lock:
            separator = self._cache.get(key)
            if separator is None:
                separator = DspSeparator()
                self._cache.put(key, separator, 0)  # no weights
            return separator

    def loaded(self) -> list[str]:
        return sorted({key[0] for key in self._cache.keys()})

    def cache_bytes(self) -> int:
        """Bytes of weights the cache holds now (models a running job still holds included)."""
        return self._cache.total_bytes()

    def knows(self, name: str) -> bool:
        """A name of this server: in the catalog or in the model folder (a listing, no weights read)."""
        if not is_model_name(name):
            return False
        return name in load_catalog() or (self.repo is not None and ModelFolder(self.repo).knows(name))

    def is_available(self, name: str) -> bool:
        """Whether every weight file is on this machine (folder or caches), from file names and bag
        files only: no weights are read."""
        if not is_model_name(name):
            return False
        if name == "dsp":
            return True
        if self.repo is not None:
            listing = ModelFolder(self.repo).listing()
            if name in listing.names():
                return _folder_has(name, listing)
        if name not in load_catalog():
            return False
        import yaml

        try:
            return in_caches(name)
        except (OSError, ValueError, TypeError, KeyError, ImportError, yaml.YAMLError):  # damaged: nothing
            return False

    def _load(self, name: str, stems: Sequence[str] | None = None):
        import yaml
        from demucs.repo import ModelLoadingError
        from safetensors import SafetensorError

        catalog = load_catalog()
        in_folder = self.repo is not None and ModelFolder(self.repo).knows(name)
        if not in_folder and name not in catalog:
            raise UnknownModel(f"unknown model '{name}'; known models: {', '.join(catalog)}")
        try:
            model = (load_from_folder(name, self.repo, stems) if in_folder and self.repo is not None
                     else load_from_caches(name, stems))
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
        except (ModelLoadingError, SafetensorError, OSError, ValueError, KeyError, TypeError,
                RuntimeError, yaml.YAMLError) as exc:
            raise ModelUnavailable(
                f"the weights of model '{name}' on this machine are damaged or incomplete "
                f"({type(exc).__name__}); download them again") from exc
        if model is not None:
            return model
        if self.offline:
            raise ModelUnavailable(
                f"model '{name}' is not on this machine and downloads are off; "
                + HOW_TO_GET_WEIGHTS.format(name=name))
        try:
            return download(name)
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
        except (Exception, SystemExit) as exc:  # network, hub and repo errors all mean the same here
            raise ModelUnavailable(
                f"model '{name}' is not on this machine and could not be downloaded "
                f"({type(exc).__name__}); " + HOW_TO_GET_WEIGHTS.format(name=name)) from exc


def _missing_package(name: str, exc: ImportError) -> ModelUnavailable:
    if "diffq" in str(exc):
        return ModelUnavailable(f"model '{name}' is quantized and needs the diffq package: "
                                "pip install diffq")
    return ModelUnavailable(f"model '{name}' needs a package that is not installed ({exc.name})")
