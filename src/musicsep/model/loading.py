"""Finding and loading models: Demucs through its own loading code (model/demucs_loading.py), the
UVR / MSST families through model/families.py, ensembles of either (model/ensemble.py).

A model name is a name (model/names.py), looked up in two places only: the local folder
(`MUSICSEP_MODEL_REPO`: Demucs's `.th` + `.yaml` bag files, or `.safetensors` + `.yaml` as on the
Hugging Face hub; model/folder.py) and the catalog. A catalog name not in the folder comes from
the Hugging Face cache, Demucs's legacy torch-hub cache, then a download (unless offline; a hub
that does not answer one quick request is a `ModelUnavailable` at once, not half a minute of retries).
The UVR / MSST families come from the folder only (their files by UVR's and audio-separator's
names; `musicsep models pull` puts them there). An alias (a file's name or stem, e.g.
`UVR-MDX-NET-Inst_HQ_4.onnx`) answers for its catalog name.
Whether a model is known or on this machine is answered from file names, never by loading it.
Loaded models are cached per (name, device, precision, stems), least recently used out first
when their weights pass `MUSICSEP_MODEL_CACHE_MB` (model/cache.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicsep.model import families
from musicsep.model.cache import ModelCache, model_bytes
from musicsep.model.catalog import canonical_name, load_catalog
from musicsep.model.demucs_loading import (
    NoNetwork,
    _missing_package,
    download,
    folder_has,
    in_caches,
    load_from_caches,
    load_from_folder,
)
from musicsep.model.devices import resolve_device, resolve_precision
from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.folder import HOW_TO_GET_WEIGHTS, ModelFolder
from musicsep.model.names import InvalidModelName, UnknownModel, is_model_name, model_name

__all__ = [
    "HOW_TO_GET_WEIGHTS",
    "InvalidModelName",
    "ModelLoader",
    "UnknownModel",
    "download",
    "resolve_device",
    "resolve_precision",
]

#: Weights kept loaded by default (`MUSICSEP_MODEL_CACHE_MB`): two of the largest catalog bags in
#: fp32 (docs/architecture.md, "Loading").
DEFAULT_CACHE_MB = 4096.0


class ModelLoader:
    """Loads models once and hands out cached separators; safe to share between threads.

    `fallback` is the chain tried, in order, when a requested model's weights are unavailable
    (`MUSICSEP_FALLBACK`, e.g. `htdemucs,dsp`); `dsp` needs no weights and always loads.
    `cache_mb` bounds the weights kept loaded (`MUSICSEP_MODEL_CACHE_MB`, model/cache.py).
    `runtime` is the CPU inference runtime (`MUSICSEP_RUNTIME`: auto, torch, openvino, onnxruntime):
    `torch` (this constructor's default, for library use) runs every family in its reference runtime
    (onnxruntime for ONNX graphs) and measures and writes nothing; the app passes Settings' `auto`.
    """

    def __init__(
        self,
        repo: Path | None = None,
        offline: bool = False,
        fallback: Sequence[str] = (),
        cache_mb: float = DEFAULT_CACHE_MB,
        runtime: str = "torch",
        runtime_cache: Path | None = None,
    ) -> None:
        self.repo = Path(repo) if repo else None
        self.runtime = runtime  # CPU inference runtime (Settings.runtime): ONNX families, RoFormer, HTDemucs
        self.runtime_cache = runtime_cache  # its measured choices (None: ~/.cache/musicsep/runtime)
        self.offline = offline
        self.fallback = tuple(fallback)
        self.cache_budget_bytes = int(cache_mb * 2**20)
        self._cache = ModelCache(self.cache_budget_bytes)
        self._failures: dict[str, ModelUnavailable] = {}
        # One load at a time: loads are the memory peaks, and two at once could pass the budget.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> ModelLoader:
        return cls(
            repo=settings.model_repo,
            offline=settings.offline,
            fallback=settings.fallback_chain,
            cache_mb=settings.model_cache_mb,
            runtime=getattr(settings, "runtime", "auto"),
            runtime_cache=getattr(settings, "runtime_cache_dir", None),
        )

    def get(self, name: str, device: str = "auto", precision: str = "fp32", stems: Sequence[str] | None = None):
        """A cached separator. With `stems`, a bag may load only the members those stems need:
        the separator then serves those stems only (the CLI's one-request-per-process case;
        the server keeps whole models, shared by every request)."""
        name = canonical_name(model_name(name))
        if name == "dsp":
            return self._get_dsp()
        info = load_catalog().get(name)
        if info is not None and info.arch == "ensemble":
            return self.ensemble(list(info.members), info.method, info.member_weights, device, precision, name=name)
        listing = ModelFolder(self.repo).listing() if self.repo is not None else None
        if families.family_arch(name, listing) is not None:
            return self._get_family(name, listing, device, precision)
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
            weights = model_bytes(model)  # counted before OpenVINO takes over (its copy is as large)
            if torch_device.type == "cpu":
                from musicsep.model.demucs_runtime import apply_runtime

                # HTDemucs's network in OpenVINO when Settings.runtime resolves to it (issue 17)
                apply_runtime(separator, runtime=self.runtime, cache_dir=self.runtime_cache)
            evicted = self._cache.put(key, separator, weights)
            del model
            if any(key[1].startswith("cuda") for key in evicted):
                torch.cuda.empty_cache()  # hand the freed weights back to the device
            return separator

    def _get_family(self, name: str, listing, device: str, precision: str):
        """An MDX-Net, RoFormer or MDX23C model from the folder, cached like Demucs's, with the
        CPU fallback on device out-of-memory (model/cpu_fallback.py)."""
        from musicsep.model.catalog import load_catalog as catalog
        from musicsep.model.cpu_fallback import CpuFallbackSeparator

        torch_device = resolve_device(device)
        precision = resolve_precision(precision, torch_device)
        key = (name, str(torch_device), precision, None)
        with self._lock:
            separator = self._cache.get(key)
            if separator is not None and not separator.fell_back:
                return separator
            if separator is not None:
                self._cache.drop([key])  # it fell back to the CPU: loaded on the device again
            if name in self._failures:
                raise self._failures[name]
            files = families.find_files(name, listing) if listing is not None else None
            try:
                if files is None:
                    raise ModelUnavailable(families.missing_files_message(name, catalog().get(name)))

                def load(on: str, at: str):
                    return families.load_family(name, files, listing, on, at, self.runtime, self.runtime_cache)

                separator = CpuFallbackSeparator(load, str(torch_device), precision)
            except ModelUnavailable as exc:
                self._failures[name] = exc
                raise
            self._cache.put(key, separator, families.weights_bytes(separator.inner, files))
            return separator

    def ensemble(
        self,
        names: Sequence[str],
        method: str = "avg_wave",
        weights: Sequence[float] | None = None,
        device: str = "auto",
        precision: str = "fp32",
        name: str | None = None,
    ):
        """An EnsembleSeparator over the named models, each loaded (and cached) as on its own."""
        from musicsep.model.ensemble import EnsembleSeparator, check_ensemble

        members = [canonical_name(model_name(member)) for member in names]
        check_ensemble(members, method, weights)
        nested = [
            member for member in members if (info := load_catalog().get(member)) is not None and info.arch == "ensemble"
        ]
        if nested:
            raise InvalidOptions(f"'{nested[0]}' is an ensemble itself; name its models instead")
        separators = [self.get(member, device, precision) for member in members]
        return EnsembleSeparator(name or "+".join(members), separators, method, weights)

    def resolve(self, name: str, device: str = "auto", precision: str = "fp32", stems: Sequence[str] | None = None):
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
        name = canonical_name(name)
        return name in load_catalog() or (self.repo is not None and ModelFolder(self.repo).knows(name))

    def is_available(self, name: str) -> bool:
        """Whether every weight file is on this machine (folder or caches), from file names and bag
        files only: no weights are read."""
        if not is_model_name(name):
            return False
        name = canonical_name(name)
        if name == "dsp":
            return True
        info = load_catalog().get(name)
        if info is not None and info.arch == "ensemble":
            return all(self.is_available(member) for member in info.members)
        listing = ModelFolder(self.repo).listing() if self.repo is not None else None
        if families.family_arch(name, listing) is not None:
            return listing is not None and families.has_files(name, listing)
        if listing is not None and name in listing.names():
            return folder_has(name, listing)
        if info is None:
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
            model = (
                load_from_folder(name, self.repo, stems)
                if in_folder and self.repo is not None
                else load_from_caches(name, stems)
            )
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
        except (
            ModelLoadingError,
            SafetensorError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            RuntimeError,
            yaml.YAMLError,
        ) as exc:
            raise ModelUnavailable(
                f"the weights of model '{name}' on this machine are damaged or incomplete "
                f"({type(exc).__name__}); download them again"
            ) from exc
        if model is not None:
            return model
        if self.offline:
            raise ModelUnavailable(
                f"model '{name}' is not on this machine and downloads are off; " + HOW_TO_GET_WEIGHTS.format(name=name)
            )
        try:
            return download(name)
        except NoNetwork as exc:
            raise ModelUnavailable(
                f"model '{name}' is not on this machine and there is no network to download it ({exc.reason}); "
                "set MUSICSEP_OFFLINE=1 on a machine without internet, then no download is tried; "
                + HOW_TO_GET_WEIGHTS.format(name=name)
            ) from exc
        except ImportError as exc:
            raise _missing_package(name, exc) from exc
        except (Exception, SystemExit) as exc:  # network, hub and repo errors all mean the same here
            raise ModelUnavailable(
                f"model '{name}' is not on this machine and could not be downloaded "
                f"({type(exc).__name__}); " + HOW_TO_GET_WEIGHTS.format(name=name)
            ) from exc
