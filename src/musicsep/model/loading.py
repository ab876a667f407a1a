"""Finding and loading model weights, through Demucs 4.1's own loading code.

Order: the local folder (`MUSICSEP_MODEL_REPO`: Demucs's `.th` + `.yaml` bag files, or
`.safetensors` + `.yaml` as on the Hugging Face hub), the Hugging Face cache, Demucs's legacy
torch-hub cache, then a download (unless offline). Loaded models are cached per
(name, device, precision).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from musicsep.model.catalog import load_catalog
from musicsep.model.errors import ModelUnavailable

HOW_TO_GET_WEIGHTS = (
    "run `musicsep models pull {name}` on a machine with internet access (it fills the "
    "Hugging Face cache), or put the model's .yaml and weight files in a folder and set "
    "MUSICSEP_MODEL_REPO to it"
)


def resolve_device(device: str = "auto"):
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable("device 'cuda' was asked for but no CUDA GPU is available")
    return torch.device(device)


def resolve_precision(precision: str, device) -> str:
    """`auto`: bf16 on CUDA and on CPUs with AMX or AVX-512 bf16, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def _cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def _load_member(sig: str, folder: Path):
    from demucs.hf import load_safetensors_model
    from demucs.repo import LocalRepo

    safetensors = folder / f"{sig}.safetensors"
    if safetensors.is_file():
        return load_safetensors_model(safetensors)
    repo = LocalRepo(folder)  # finds `<sig>-<checksum>.th` and verifies the checksum
    if repo.has_model(sig):
        return repo.get_model(sig)
    return None


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
    """A bag `<name>.yaml` whose members are `.safetensors` or `.th` files, or a single model."""
    import yaml

    bag_file = folder / f"{name}.yaml"
    if bag_file.is_file():
        def load(sig: str):
            member = _load_member(sig, folder)
            if member is None:
                raise ModelUnavailable(
                    f"model '{name}' lists weights '{sig}' that are not in the model folder; "
                    + HOW_TO_GET_WEIGHTS.format(name=name))
            return member

        return _bag(name, yaml.safe_load(bag_file.read_text()), load, stems)
    return _load_member(name, folder)


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
            hf_hub_download(repo_id, f"{sig}.safetensors", local_files_only=True)), stems)
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


def download(name: str):
    """Demucs's own `get_model`: the Hugging Face hub, then the legacy repository."""
    from demucs.pretrained import get_model

    return get_model(name)


class UnknownModel(ModelUnavailable):
    """A name that is neither in the catalog nor in the model folder: a typo, not a missing download."""


class ModelLoader:
    """Loads models once and hands out cached separators; safe to share between threads.

    `fallback` is the chain tried, in order, when a requested model's weights are unavailable
    (`MUSICSEP_FALLBACK`, e.g. `htdemucs,dsp`); `dsp` needs no weights and always loads.
    """

    def __init__(self, repo: Path | None = None, offline: bool = False,
                 fallback: Sequence[str] = ()) -> None:
        self.repo = Path(repo) if repo else None
        self.offline = offline
        self.fallback = tuple(fallback)
        self._cache: dict[tuple, object] = {}
        self._failures: dict[str, ModelUnavailable] = {}
        self._lock = threading.Lock()

    def get(self, name: str, device: str = "auto", precision: str = "fp32", stems: Sequence[str] | None = None):
        """A cached separator. With `stems`, a bag may load only the members those stems need:
        the separator then serves those stems only (the CLI's one-request-per-process case;
        the server keeps whole models, shared by every request)."""
        if name == "dsp":
            return self._get_dsp()
        import torch

        from musicsep.model.recovery import RecoveringSeparator

        torch_device = resolve_device(device)
        precision = resolve_precision(precision, torch_device)
        key = (name, str(torch_device), precision, frozenset(stems) if stems else None)
        with self._lock:
            if key not in self._cache:
                # A model found missing stays missing until `forget` (a download can take 30 s
                # to fail; it is not retried for every job).
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
                self._cache[key] = RecoveringSeparator(name, model, torch_device, precision)
            return self._cache[key]

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

    def forget(self, name: str) -> None:
        """Drop a model from the caches (reload after new weights arrived, or after a GPU fallback)."""
        with self._lock:
            self._failures.pop(name, None)
            for key in [key for key in self._cache if key[0] == name]:
                del self._cache[key]

    def _get_dsp(self):
        from musicsep.model.dsp import DspSeparator

        with self._lock:
            key = ("dsp", "cpu", "fp32", None)
            if key not in self._cache:
                self._cache[key] = DspSeparator()
            return self._cache[key]

    def loaded(self) -> list[str]:
        return sorted({key[0] for key in self._cache})

    def is_available(self, name: str) -> bool:
        """Whether the weights are on this machine (folder or caches), without loading them."""
        if name == "dsp":
            return True
        try:
            return self._find_locally(name) is not None
        except ModelUnavailable:
            return False

    def _find_locally(self, name: str, stems: Sequence[str] | None = None):
        if self.repo is not None:
            model = load_from_folder(name, self.repo, stems)
            if model is not None:
                return model
        return load_from_caches(name, stems)

    def _load(self, name: str, stems: Sequence[str] | None = None):
        from demucs.repo import ModelLoadingError
        from safetensors import SafetensorError

        catalog = load_catalog()
        try:
            model = self._find_locally(name, stems)
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
        except (ModelLoadingError, SafetensorError, OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelUnavailable(
                f"the weights of model '{name}' on this machine are damaged or incomplete "
                f"({type(exc).__name__}); download them again") from exc
        if model is not None:
            return model
        if name not in catalog:
            known = ", ".join(catalog)
            raise UnknownModel(f"unknown model '{name}'; known models: {known}")
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
