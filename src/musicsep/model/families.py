"""The UVR / MSST engine families behind one door: which family a name is, where its files are,
whether they are all here (from file names only), and loading it.

A name is a family's when the catalog says so (`arch`), or, for a model the catalog does not know,
when the model folder has `<name>.onnx` (MDX-Net) or `<name>.ckpt` beside `<name>.yaml` (an MSST
checkpoint; the YAML's `model` keys say which architecture). The families' own loaders
(model/mdx, model/roformer, model/mdx23c) raise `ModelUnavailable` for every file they cannot use;
it passes through here untouched, and any other failure to read a file becomes one too.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from musicsep.model.catalog import CHECKPOINT_ARCHES, DEFAULT_CHUNKING, ModelInfo, load_catalog
from musicsep.model.errors import ModelUnavailable
from musicsep.model.folder import HOW_TO_GET_WEIGHTS, Listing

#: Families loaded here (Demucs, dsp and ensembles are the loader's own).
FAMILY_ARCHES = ("mdx", *CHECKPOINT_ARCHES)
#: UVR's MDX-Net hash table, as UVR (`model_data/model_data.json`) and audio-separator
#: (`mdx_model_data.json`, `model_data_new.json`) lay it out; the first found is read.
HASH_TABLE_NAMES = ("model_data.json", "model_data_new.json", "mdx_model_data.json")


@dataclass(frozen=True)
class FamilyFiles:
    arch: str  # "mdx", or "msst" until the config is read, or one of CHECKPOINT_ARCHES
    weights: Path
    config: Path | None = None


def family_arch(name: str, listing: Listing | None) -> str | None:
    """The family of `name` (None: not a UVR/MSST model, i.e. Demucs, dsp or an ensemble)."""
    info = load_catalog().get(name)
    if info is not None:
        return info.arch if info.arch in FAMILY_ARCHES else None
    if listing is None:
        return None
    if f"{name}.onnx" in listing.files:
        return "mdx"
    if f"{name}.ckpt" in listing.files and f"{name}.yaml" in listing.files:
        return "msst"
    return None


def find_files(name: str, listing: Listing) -> FamilyFiles | None:
    """The weight (and config) files of `name` in the folder, by the catalog's file names
    (UVR's, then audio-separator's) or `<name>.onnx` / `<name>.ckpt` + `<name>.yaml`; None when any is missing."""
    info = load_catalog().get(name)
    if info is None:
        arch = family_arch(name, listing)
        if arch == "mdx":
            return FamilyFiles("mdx", listing.files[f"{name}.onnx"])
        if arch == "msst":
            return FamilyFiles("msst", listing.files[f"{name}.ckpt"], listing.files[f"{name}.yaml"])
        return None
    weights = listing.file(info.weights)
    if weights is None:
        return None
    if info.arch == "mdx":
        return FamilyFiles("mdx", weights)
    # A config named like the weights first (audio-separator's pairing), then the catalog's list.
    config = listing.file([f"{weights.name.rsplit('.', 1)[0]}.yaml", *info.config])
    return FamilyFiles(info.arch, weights, config) if config is not None else None


def has_files(name: str, listing: Listing) -> bool:
    return find_files(name, listing) is not None


def missing_files_message(name: str, info: ModelInfo | None) -> str:
    wanted = ", ".join([*(info.weights[:1] if info else ()), *(info.config[:1] if info else ())])
    return (
        f"model '{name}' is not in the model folder (it needs {wanted or 'its weight files'}); "
        + HOW_TO_GET_WEIGHTS.format(name=name)
    )


def load_family(
    name: str,
    files: FamilyFiles,
    listing: Listing,
    device: str,
    precision: str,
    runtime: str = "onnxruntime",
    runtime_cache: Path | None = None,
):
    """The family's separator for `files`; every unusable file is a `ModelUnavailable`. `runtime`
    (Settings.runtime) picks the CPU runtime of an MDX-Net graph (mdx/runtimes.py) and of a BS- or
    Mel-Band RoFormer's network (roformer/runtimes.py); MDX23C runs in torch whatever it says."""
    info = load_catalog().get(name)
    try:
        if files.arch == "mdx":
            return _load_mdx(name, files.weights, info, listing, device, precision, runtime, runtime_cache)
        assert files.config is not None
        arch = files.arch if files.arch != "msst" else msst_arch(files.config)
        # Tools disagree on the chunking of the same checkpoint: the catalog fixes it per model.
        chunking = {
            "chunk_size": info.chunk_size if info else None,
            "num_overlap": info.num_overlap if info else None,
            "chunking": info.chunking if info and info.chunking else DEFAULT_CHUNKING,
        }
        if arch == "mdx23c":
            from musicsep.model.mdx23c import load_mdx23c

            return load_mdx23c(files.weights, files.config, name=name, device=device, precision=precision, **chunking)
        from musicsep.model.roformer import load_roformer

        return load_roformer(
            files.weights,
            files.config,
            name=name,
            device=device,
            precision=precision,
            arch=arch,
            runtime="torch" if runtime == "onnxruntime" else runtime,
            runtime_cache=runtime_cache,
            **chunking,
        )
    except ModelUnavailable:
        raise
    except ImportError as exc:
        raise ModelUnavailable(f"model '{name}' needs a package that is not installed ({exc.name})") from exc
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:
        raise ModelUnavailable(
            f"the files of model '{name}' on this machine are damaged or incomplete "
            f"({type(exc).__name__}); download them again"
        ) from exc


def msst_arch(config: Path) -> str:
    """bs_roformer, mel_band_roformer or mdx23c, from the `model` keys of an MSST YAML (reads the
    config, never the weights): band splits are BS-RoFormer's, mel bands Mel-Band RoFormer's,
    sub-bands and scales MDX23C's."""
    from musicsep.model.msst.config import load_msst_config

    model = load_msst_config(config).model  # validated: a file that is no MSST config is ModelUnavailable
    if "freqs_per_bands" in model:
        return "bs_roformer"
    if "num_bands" in model:
        return "mel_band_roformer"
    if "num_subbands" in model or "num_scales" in model:
        return "mdx23c"
    raise ModelUnavailable(
        "the model's .yaml is not a config of a known architecture (BS-RoFormer, Mel-Band RoFormer or MDX23C)"
    )


def _load_mdx(
    name: str,
    path: Path,
    info: ModelInfo | None,
    listing: Listing,
    device: str,
    precision: str,
    runtime: str,
    runtime_cache: Path | None,
):
    from musicsep.model.mdx import load_mdx

    params = mdx_params(name, path, info, listing)
    return load_mdx(
        path, params, name=name, device=device, precision=precision, runtime=runtime, runtime_cache=runtime_cache
    )


def mdx_params(name: str, path: Path, info: ModelInfo | None, listing: Listing):
    """The catalog's parameters, else UVR's hash table in the folder; else a clear ModelUnavailable."""
    from musicsep.model.mdx import MdxParams, mdx_params_for_file, missing_parameters, read_uvr_model_data

    if info is not None and info.mdx:
        values = dict(info.mdx)
        primary = str(values.pop("primary"))
        secondary = next(stem for stem in info.stems if stem != primary)
        return MdxParams(primary=primary, secondary=secondary, **values)
    table = listing.file(HASH_TABLE_NAMES)
    params = mdx_params_for_file(path, read_uvr_model_data(table)) if table is not None else None
    if params is None:
        raise missing_parameters(name)
    return params


def weights_bytes(separator, files: FamilyFiles) -> int:
    """What the cache counts for a family model: the separator's own `weight_bytes` where it has one,
    else its weight file's size (an ONNX session's weights are not torch tensors; a checkpoint's size
    is its fp32 parameters within a few percent)."""
    own = getattr(separator, "weight_bytes", None)
    if isinstance(own, int):
        return own
    try:
        return files.weights.stat().st_size
    except OSError:
        return 0
