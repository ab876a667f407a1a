"""Fixtures of the model-name tests: a model folder, a real tiny model
outside it, and a record of every weight file Demucs's own loaders read.

The record wraps Demucs's readers (`demucs.hf.load_safetensors_model` for `.safetensors`,
`demucs.repo.load_model` for pickled `.th`, `demucs.pretrained.get_model` for downloads): they
still run, each call is noted. Rust's safetensors opens its files outside Python's audit hooks,
which is why the readers are wrapped rather than `open` watched. `open` is watched too, for the
files around the weights (a bag's `.yaml`) that must never be read from outside the folder.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import save_safetensors, tiny_htdemucs


@dataclass
class ModelPlaces:
    repo: Path  # what MUSICSEP_MODEL_REPO points at: `tiny_one` (a .safetensors model)
    outside: Path  # beside it: `evil.safetensors` and `evil_bag.yaml`, real tiny models


@pytest.fixture(scope="session")
def model_places(tmp_path_factory) -> ModelPlaces:
    root = tmp_path_factory.mktemp("names")
    repo, outside = root / "repo", root / "outside"
    repo.mkdir()
    outside.mkdir()
    save_safetensors(tiny_htdemucs(30), repo, "tiny_one")
    save_safetensors(tiny_htdemucs(31), outside, "evil")
    # A bag whose member is named by a path too, as a hostile folder elsewhere could hold it.
    (outside / "evil_bag.yaml").write_text("models: ['../outside/evil']\n")
    return ModelPlaces(repo, outside)


@dataclass
class WeightReads:
    paths: list[Path] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)  # files opened under a watched folder
    watched: list[Path] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.paths) + len(self.downloads)


_ACTIVE: list[WeightReads] = []


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not _ACTIVE or not isinstance(args[0], (str, Path)):
        return
    path = str(args[0])
    for reads in _ACTIVE:
        if any(path.startswith(str(folder)) for folder in reads.watched):
            reads.opened.append(path)


_HOOKED = False


@pytest.fixture
def weight_reads(monkeypatch) -> Iterator[WeightReads]:
    """Every weight read during the test; `watched` folders also record any file opened in them."""
    global _HOOKED
    import demucs.hf
    import demucs.pretrained
    import demucs.repo

    reads = WeightReads()
    read_safetensors, read_th, get_model = (
        demucs.hf.load_safetensors_model,
        demucs.repo.load_model,
        demucs.pretrained.get_model,
    )

    def safetensors(path, *args, **kwargs):
        reads.paths.append(Path(path))
        return read_safetensors(path, *args, **kwargs)

    def th(path_or_package, *args, **kwargs):
        reads.paths.append(Path(path_or_package) if isinstance(path_or_package, (str, Path)) else Path("<package>"))
        return read_th(path_or_package, *args, **kwargs)

    def download(name, *args, **kwargs):
        reads.downloads.append(name)
        return get_model(name, *args, **kwargs)

    monkeypatch.setattr(demucs.hf, "load_safetensors_model", safetensors)
    monkeypatch.setattr(demucs.repo, "load_model", th)
    monkeypatch.setattr(demucs.pretrained, "get_model", download)
    if not _HOOKED:  # audit hooks cannot be removed: one for the session, active only in a test
        sys.addaudithook(_audit)
        _HOOKED = True
    _ACTIVE.append(reads)
    try:
        yield reads
    finally:
        _ACTIVE.remove(reads)
