"""Demucs's weights: a local folder's bags and models, the Hugging Face and legacy caches, a download.

Everything here goes through Demucs 4.1's own loading code (`demucs.repo`, `demucs.hf`,
`demucs.pretrained`); the loader (model/loading.py) decides when each is tried.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from musicsep.model.catalog import load_catalog
from musicsep.model.errors import ModelUnavailable
from musicsep.model.folder import HOW_TO_GET_WEIGHTS, Listing, ModelFolder
from musicsep.model.names import is_model_name, model_name


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
    return BagOfModels([member(i) for i in keep], [weights[i] for i in keep] if weights else None, bag.get("segment"))


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
                    + HOW_TO_GET_WEIGHTS.format(name=name)
                )
            return member

        return _bag(name, yaml.safe_load(bag_file.read_text()), load, stems)
    return _load_member(name, folder, listing)


def folder_has(name: str, listing: Listing) -> bool:
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
        return _bag(
            name,
            bag,
            lambda sig: load_safetensors_model(
                hf_hub_download(repo_id, f"{model_name(sig)}.safetensors", local_files_only=True)
            ),
            stems,
        )
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
        return all(
            isinstance(try_to_load_from_cache(repo_id, f"{model_name(sig)}.safetensors"), str) for sig in members
        )
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if not checkpoints.is_dir():
        return False
    local = LocalRepo(checkpoints)
    if local.has_model(name):
        return True
    remote_bag = REMOTE_ROOT / f"{name}.yaml"
    return remote_bag.is_file() and all(
        local.has_model(sig) for sig in yaml.safe_load(remote_bag.read_text())["models"]
    )


#: Longest the reachability check before a download waits for the hub to answer.
REACH_TIMEOUT_S = 3.0


class NoNetwork(ModelUnavailable):
    """The hub did not answer the one check made before a download: nothing was downloaded."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"no network ({reason}): model '{name}' was not downloaded")
        self.reason = reason


def hub_unreachable(timeout_s: float = REACH_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub (`HF_ENDPOINT`, proxies from the environment) cannot be reached
    from here, or None when it answers anything at all.

    One request and no retries: without it, a machine without a network spends about 24 s in
    huggingface_hub's and torch.hub's retries before every fallback. The request runs in a daemon
    thread because httpx's timeout does not bound name resolution, which can hang longer.
    """
    import httpx
    from huggingface_hub import constants

    outcome: list[str | None] = []

    def probe() -> None:
        try:
            httpx.head(constants.ENDPOINT, timeout=timeout_s)
            outcome.append(None)
        except httpx.HTTPError as exc:
            outcome.append(f"{constants.ENDPOINT}: {type(exc).__name__}")

    thread = threading.Thread(target=probe, name="musicsep-hub-check", daemon=True)
    thread.start()
    thread.join(timeout_s + 1.0)
    return outcome[0] if outcome else f"{constants.ENDPOINT}: no answer within {timeout_s:.0f} s"


def download(name: str):
    """Demucs's own `get_model` (the Hugging Face hub, then the legacy repository) once the hub
    answers; raises `NoNetwork` at once when it does not.

    torch.hub announces each legacy download on stdout (`Downloading: "URL" to PATH`), which is
    where the CLI's `--json` objects go: it goes to stderr, with the progress bars. The redirect is
    process-wide while it lasts; the loader runs one load at a time.
    """
    from demucs.pretrained import get_model

    unreachable = hub_unreachable()
    if unreachable is not None:
        raise NoNetwork(name, unreachable)
    with contextlib.redirect_stdout(sys.stderr):
        return get_model(name)


def _missing_package(name: str, exc: ImportError) -> ModelUnavailable:
    if "diffq" in str(exc):
        return ModelUnavailable(f"model '{name}' is quantized and needs the diffq package: pip install diffq")
    return ModelUnavailable(f"model '{name}' needs a package that is not installed ({exc.name})")
