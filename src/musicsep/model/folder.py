"""The model folder (`MUSICSEP_MODEL_REPO`) as a listing of file names.

Which models a folder holds is answered from its directory listing, never by reading weights:
`<name>.yaml` is a bag (its members by signature), `<sig>.safetensors` is a model as on the Hugging
Face hub, `<sig>-<checksum>.th` (or `<sig>.th`) is Demucs's pickled format, named as Demucs's
`LocalRepo` names them. The UVR / MSST families are files by their exact names (`<name>.onnx`,
`<name>.ckpt` beside a config `.yaml`), also in the subfolders where UVR and audio-separator keep
MDX-Net's hash table and the MSST configs. Only entries whose name is a model name count, and only regular files
whose real path (symlinks followed) stays inside the folder: a link to elsewhere is ignored, so
nothing outside the folder is ever read, whatever the folder holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from musicsep.model.names import is_model_name

HOW_TO_GET_WEIGHTS = (
    "run `musicsep models pull {name}` on a machine with internet access (it fills the "
    "Hugging Face cache, or the model folder for UVR/MSST models), or put the model's files in a "
    "folder and set MUSICSEP_MODEL_REPO to it"
)


@dataclass(frozen=True)
class Listing:
    """What one look at the folder found: model name or signature -> file."""

    bags: dict[str, Path] = field(default_factory=dict)
    safetensors: dict[str, Path] = field(default_factory=dict)
    th: dict[str, Path] = field(default_factory=dict)
    #: Every usable file by its exact name (root first, then the subfolders in `SUBFOLDERS`).
    files: dict[str, Path] = field(default_factory=dict)

    def names(self) -> set[str]:
        """Demucs names (a `.yaml` that is an MSST config beside its `.ckpt` is not a bag),
        `<stem>.onnx` files and `<stem>.ckpt` files with a same-stem `.yaml`."""
        onnx = {name[:-5] for name in self.files if name.endswith(".onnx")}
        ckpt = {name[:-5] for name in self.files if name.endswith(".ckpt")}
        paired = {stem for stem in ckpt if f"{stem}.yaml" in self.files}
        bags = {name for name in self.bags if name not in ckpt}
        return bags | set(self.safetensors) | set(self.th) | onnx | paired

    def file(self, names: tuple[str, ...] | list[str]) -> Path | None:
        """The first of `names` the folder has."""
        return next((self.files[name] for name in names if name in self.files), None)

    def weights(self, sig: str) -> Path | None:
        """The weight file of one model (a bag member or a single model), `.safetensors` first."""
        return self.safetensors.get(sig) or self.th.get(sig)


#: Where UVR (`models/MDX_Net_Models/model_data/...`) and audio-separator keep MDX-Net's hash table
#: and MSST configs, relative to the folder of the weights; searched after the folder itself.
SUBFOLDERS = (
    "model_data",
    "mdx_model_data",
    "mdx_c_configs",
    "model_data/mdx_c_configs",
    "mdx_model_data/mdx_c_configs",
)


class ModelFolder:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def listing(self) -> Listing:
        """Read again at each call (a few dozen names): weights copied in later are seen at once."""
        listing = Listing()
        try:
            real_root = self.root.resolve(strict=True)
            entries = list(os.scandir(self.root))
        except OSError:
            return listing
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot:
                continue
            if suffix == "th" and "-" in stem:
                stem = stem.rsplit("-", 1)[0]  # `<sig>-<sha256 prefix>.th`, checked by LocalRepo on load
            kind = {"yaml": listing.bags, "safetensors": listing.safetensors, "th": listing.th}.get(suffix)
            if kind is None or not is_model_name(stem) or not _inside(Path(entry.path), real_root):
                continue
            kind[stem] = Path(entry.path)
        for sub in ("", *SUBFOLDERS):
            for path in _regular_files(self.root / sub if sub else self.root, real_root):
                listing.files.setdefault(path.name, path)
        return listing

    def knows(self, name: str) -> bool:
        return is_model_name(name) and name in self.listing().names()


def _regular_files(folder: Path, real_root: Path) -> list[Path]:
    """The files of one folder (not recursive) whose names are model file names, inside the root."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return [Path(entry.path) for entry in entries if is_model_name(entry.name) and _inside(Path(entry.path), real_root)]


def _inside(path: Path, real_root: Path) -> bool:
    """A regular file whose real path is inside the folder (resolve, then compare: `..` and links)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, a link loop
        return False
    return real.is_relative_to(real_root) and real.is_file()


def legacy_checkpoints() -> Path:
    """Where Demucs's own downloads (`<sig>-<checksum>.th`) land: torch hub's `checkpoints` folder.
    Asked here so that code outside the model layer (`musicsep models path`) never imports torch."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"
