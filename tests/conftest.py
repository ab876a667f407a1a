"""Shared fixtures: tiny Demucs models saved in Demucs's own formats, and synthetic audio.

The models are built with Demucs's real classes (HTDemucs, HDemucs) with few channels so the
real loading and separation code runs in seconds; no Demucs code is mocked anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

# The live-server fixtures (real uvicorn on 127.0.0.1) for every test folder.
from server_harness import live_server  # noqa: F401

SOURCES = ["drums", "bass", "other", "vocals"]
_OWN_RUNTIME_CACHE = pytest.StashKey[str]()  # the session's runtime cache, when this process made it


def pytest_configure(config):
    """Under pytest-xdist each worker's torch gets its share of the cores, not all of them: N
    workers each running one thread per core oversubscribe the machine, and the model tests
    then run slower than with their share alone.

    Every server, worker and engine the tests start reads and writes a runtime cache of the
    session's own (the workers and their child processes inherit the variable), never the
    user's ~/.cache/musicsep/runtime: a choice a benchmark recorded there once made the test
    servers run the tiny model in OpenVINO while the references ran it in torch."""
    if "MUSICSEP_RUNTIME_CACHE_DIR" not in os.environ:
        os.environ["MUSICSEP_RUNTIME_CACHE_DIR"] = tempfile.mkdtemp(prefix="musicsep-test-runtime-")
        config.stash[_OWN_RUNTIME_CACHE] = os.environ["MUSICSEP_RUNTIME_CACHE_DIR"]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers))


def pytest_unconfigure(config):
    if _OWN_RUNTIME_CACHE in config.stash:
        shutil.rmtree(config.stash[_OWN_RUNTIME_CACHE], ignore_errors=True)


SAMPLERATE = 44100


def tiny_htdemucs(seed: int = 0, sources: list[str] | None = None):
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(
        sources or SOURCES,
        channels=4,
        depth=3,
        nfft=512,
        t_layers=1,
        t_heads=2,
        segment=Fraction(2, 1),
        dconv_comp=4,
        t_hidden_scale=1.0,
    )
    return model.eval()


def tiny_hdemucs(seed: int = 1):
    import torch
    from demucs.hdemucs import HDemucs

    torch.manual_seed(seed)
    return HDemucs(SOURCES, channels=4, depth=4, nfft=256, segment=2, dconv_comp=4).eval()


def save_th(model, folder: Path, sig: str) -> None:
    """Demucs's legacy format: a pickled package `<sig>-<sha256[:8]>.th`, as `save_with_checksum`."""
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs
    package = {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=False),
        "training_args": {},
    }
    save_with_checksum(package, folder / f"{sig}.th")


def _encode_json(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: _encode_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_json(v) for v in value]
    return value


def save_safetensors(model, folder: Path, sig: str) -> None:
    """The Hugging Face hub layout Demucs 4.1 reads (`demucs.hf.load_safetensors_model`)."""
    from safetensors.torch import save_file

    args, kwargs = model._init_args_kwargs
    klass = f"{model.__class__.__module__}.{model.__class__.__name__}"
    metadata = {
        "klass": klass,
        "args": json.dumps(_encode_json(list(args))),
        "kwargs": json.dumps(_encode_json(kwargs)),
    }
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / f"{sig}.safetensors"), metadata=metadata)


def write_bag(folder: Path, name: str, sigs: list[str], weights=None, segment=None) -> None:
    import yaml

    bag: dict = {"models": sigs}
    if weights is not None:
        bag["weights"] = weights
    if segment is not None:
        bag["segment"] = segment
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(bag))


@pytest.fixture(scope="session")
def tiny_model_repo(tmp_path_factory) -> Path:
    """A MUSICSEP_MODEL_REPO folder: `tiny_htdemucs`, `tiny_hdemucs`, `tiny_bag`, `tiny_st`,
    `tiny_ft` (a per-stem bag like htdemucs_ft) and `tiny_6s` (six sources)."""
    folder = tmp_path_factory.mktemp("models")
    save_th(tiny_htdemucs(0), folder, "tiny_htdemucs")
    save_th(tiny_hdemucs(1), folder, "tiny_hdemucs")
    save_th(tiny_htdemucs(2), folder, "aaaa0002")
    save_th(tiny_hdemucs(3), folder, "aaaa0003")
    write_bag(folder, "tiny_bag", ["aaaa0002", "aaaa0003"], [[1, 1, 0.5, 1], [1, 0.5, 1, 1]])
    save_safetensors(tiny_htdemucs(4), folder, "bbbb0004")
    write_bag(folder, "tiny_st", ["bbbb0004"])
    sigs = []
    for i in range(4):
        sig = f"cccc000{i}"
        save_safetensors(tiny_htdemucs(10 + i), folder, sig)
        sigs.append(sig)
    eye = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    write_bag(folder, "tiny_ft", sigs, eye)
    save_th(tiny_htdemucs(20, ["drums", "bass", "other", "vocals", "guitar", "piano"]), folder, "tiny_6s")
    return folder


def synth_music(seconds: float, samplerate: int = SAMPLERATE, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A deterministic little song: kick clicks, a bass line, a chord pad and a vibrato lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * samplerate)) / samplerate
    beat = 0.5
    kick = np.exp(-40 * (t % beat)) * np.sin(2 * np.pi * 60 * t)
    bass = 0.3 * np.sin(2 * np.pi * 55 * (1 + (np.floor(t / 2) % 2) * 0.5) * t)
    pad = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    lead = 0.2 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
    noise = 0.01 * rng.standard_normal(t.size)
    left = kick + bass + pad + 0.7 * lead + noise
    right = kick + bass + 0.8 * pad + lead + noise
    stereo = np.stack([left, right]).astype(np.float32) * 0.5
    if channels == 1:
        return stereo.mean(0, keepdims=True)
    if channels > 2:
        extra = [0.5 * stereo[i % 2] for i in range(channels - 2)]
        return np.concatenate([stereo, np.stack(extra)])
    return stereo


@pytest.fixture
def make_clip(tmp_path) -> Callable[..., Path]:
    """Write a synthetic clip to tmp_path and return its path (format from the suffix)."""
    counter = iter(range(10_000))

    def _make(
        seconds: float = 10.0,
        samplerate: int = SAMPLERATE,
        channels: int = 2,
        suffix: str = ".wav",
        kind: str = "music",
        seed: int = 0,
    ) -> Path:
        import soundfile as sf

        if kind == "music":
            audio = synth_music(seconds, samplerate, channels, seed)
        elif kind == "silence":
            audio = np.zeros((channels, int(seconds * samplerate)), np.float32)
        elif kind == "noise":
            audio = 0.1 * np.random.default_rng(seed).standard_normal((channels, int(seconds * samplerate))).astype(
                np.float32
            )
        else:
            raise ValueError(kind)
        path = tmp_path / f"clip{next(counter)}_{kind}{suffix}"
        sf.write(str(path), audio.T, samplerate)
        return path

    return _make


@pytest.fixture(scope="session")
def runtime_cache_dir(tmp_path_factory) -> Path:
    """One CPU-runtime cache per test session, so tests never write ~/.cache/musicsep/runtime and each
    tiny model's `auto` calibration (and OpenVINO compile) is paid once per worker, not per load."""
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture
def model_repo_env(tiny_model_repo, runtime_cache_dir, monkeypatch) -> Path:
    """Point MUSICSEP_MODEL_REPO at the tiny models and keep everything offline."""
    monkeypatch.setenv("MUSICSEP_MODEL_REPO", str(tiny_model_repo))
    monkeypatch.setenv("MUSICSEP_RUNTIME_CACHE_DIR", str(runtime_cache_dir))
    monkeypatch.setenv("MUSICSEP_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tiny_model_repo
