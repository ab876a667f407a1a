"""The RoFormers' network in OpenVINO (roformer/openvino_core.py) against torch, and `auto`'s cached choice.

Skipped where the openvino wheel is missing (the `server` extra has it); the models are the tiny
ViperX 1297 and Kim Mel-Band variants, so a conversion takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.msst_models import build_roformer_checkpoint
from musicsep.model.roformer import load_roformer
from musicsep.model.spill import ArrayReader

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(frames: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, frames)) * 0.3).astype(np.float32)


def separate(separator, mix: np.ndarray, stems) -> np.ndarray:
    run = separator.prepare(mix.shape[-1], list(stems))
    return np.concatenate(list(run.blocks(ArrayReader(mix), lambda: None)), axis=-1)


@pytest.fixture(scope="module")
def viperx(tmp_path_factory):
    return build_roformer_checkpoint(tmp_path_factory.mktemp("rof-rt"), "viperx_1297", size="tiny", seed=3)


@pytest.fixture(scope="module")
def kim(tmp_path_factory):
    return build_roformer_checkpoint(tmp_path_factory.mktemp("rof-rt-kim"), "kim_vocals", size="tiny", seed=4)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One runtime cache for the module: the network is converted once (about 20 s), not per test."""
    return tmp_path_factory.mktemp("rof-rt-cache")


@pytest.mark.parametrize(("model", "chunking"), [("viperx", "uvr"), ("viperx", "msst"), ("kim", "uvr")])
def test_openvino_streams_torch_output(request, shared_cache, model, chunking):
    pytest.importorskip("openvino")
    ckpt, yaml_path = request.getfixturevalue(model)
    torch_sep = load_roformer(ckpt, yaml_path, name="m", chunking=chunking)
    ov_sep = load_roformer(ckpt, yaml_path, name="m", chunking=chunking, runtime="openvino", runtime_cache=shared_cache)
    assert (torch_sep.runtime, ov_sep.runtime) == ("torch", "openvino")
    assert not any(isinstance(value, torch.nn.Module) for value in vars(ov_sep.model).values())  # weights: OpenVINO's
    # Chunks of the compiled length, then a track shorter than one chunk (the dynamic-shape network).
    for frames in (3 * torch_sep.chunk_size + 777, torch_sep.chunk_size // 2 + 5):
        mix = noise(frames)  # not a multiple of any step
        expected = separate(torch_sep, mix, ["vocals", "instrumental"])
        out = separate(ov_sep, mix, ["vocals", "instrumental"])
        assert np.abs(expected[0]).max() > 1e-3  # the network really ran
        assert np.abs(out - expected).max() < 1e-4


def test_auto_measures_once_and_keeps_the_converted_network(viperx, shared_cache, monkeypatch):
    pytest.importorskip("openvino")
    ckpt, yaml_path = viperx
    first = load_roformer(ckpt, yaml_path, name="m", chunking="uvr", runtime="auto", runtime_cache=shared_cache)
    choice = first.runtime_choice
    assert choice is not None and not choice.cached and set(choice.seconds) == {"torch", "openvino"}
    assert json.loads((shared_cache / f"{choice.key}.json").read_text())["runtime"] == first.runtime
    assert list((shared_cache / "openvino" / choice.key).glob("ir/core.xml"))  # the converted network is kept

    def never(*args, **kwargs):
        raise AssertionError("a cached choice was converted or measured again")

    monkeypatch.setattr("musicsep.model.roformer.runtimes.calibrate", never)
    monkeypatch.setattr("musicsep.model.roformer.runtimes.convert", never)
    second = load_roformer(ckpt, yaml_path, name="m", chunking="uvr", runtime="auto", runtime_cache=shared_cache)
    assert second.runtime_choice.cached and second.runtime == first.runtime


def test_missing_wheel_stays_in_torch(tmp_path, monkeypatch):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path / "bs", "viperx_1297", size="tiny", seed=2)
    monkeypatch.setattr("musicsep.model.roformer.runtimes.runtime_available", lambda name: name != "openvino")
    for runtime in ("auto", "openvino"):
        separator = load_roformer(ckpt, yaml_path, name="b", runtime=runtime, runtime_cache=tmp_path)
        assert separator.runtime == "torch" and separator.runtime_choice is None
    assert not list(tmp_path.glob("*.json"))
