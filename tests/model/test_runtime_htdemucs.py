"""HTDemucs's network in OpenVINO (demucs_runtime/) against torch, streamed, and `auto`'s cached choice.

Skipped where the openvino wheel is missing (the `server` extra has it); the models are the tiny
HTDemucs of tests/conftest.py, so a conversion takes seconds. One runtime cache for the module:
each network is converted once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from musicsep.model.demucs_stream import DemucsSeparator, PassOptions
from musicsep.model.loading import ModelLoader
from musicsep.model.runtime.choice import agreement_db
from musicsep.model.spill import ArrayReader

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(seconds: float, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, int(44100 * seconds))) * 0.3).astype(np.float32)


def separate(separator: DemucsSeparator, mix: np.ndarray, **options) -> np.ndarray:
    run = separator.prepare(mix.shape[-1], separator.sources, PassOptions(**options))
    ticks = []
    out = np.concatenate(list(run.blocks(ArrayReader(mix), lambda: ticks.append(1))), axis=-1)
    assert len(ticks) == run.chunks  # progress as in torch: one tick per chunk
    return out


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("htdemucs-rt-cache")


def loader(repo, runtime: str, cache) -> ModelLoader:
    return ModelLoader(repo=repo, offline=True, runtime=runtime, runtime_cache=cache)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("tiny_htdemucs", {"overlap": 0.25}),
        ("tiny_htdemucs", {"overlap": 0.5, "segment": 1.5, "batch_size": 2, "jobs": 2}),
        ("tiny_bag", {"overlap": 0.25}),  # an HTDemucs member in OpenVINO beside an HDemucs one in torch
    ],
)
def test_openvino_streams_torch_output(tiny_model_repo, shared_cache, name, options):
    pytest.importorskip("openvino")
    torch_sep = loader(tiny_model_repo, "torch", shared_cache).get(name, device="cpu")
    ov_sep = loader(tiny_model_repo, "openvino", shared_cache).get(name, device="cpu")
    assert (torch_sep.runtime, ov_sep.runtime) == ("torch", "openvino")
    assert len(ov_sep.runtimes) == 1 and ov_sep.runtime_choice is None  # forced: nothing measured
    converted = [m for m in ov_sep.members()[0] if id(m) in ov_sep.runtimes]
    assert all(p.numel() == 0 for m in converted for p in m.parameters())  # torch's copy of the weights freed
    mix = noise(5.3)  # not a multiple of any stride: the short last chunk is padded
    expected = separate(torch_sep, mix, **options)
    out = separate(ov_sep, mix, **options)
    assert np.abs(expected).max() > 1e-3  # the network really ran
    assert np.abs(out - expected).max() < 1e-4
    assert min(agreement_db(expected[k], out[k]) for k in range(len(expected))) >= 60


def test_second_load_converts_nothing(tiny_model_repo, shared_cache, monkeypatch):
    pytest.importorskip("openvino")
    loader(tiny_model_repo, "openvino", shared_cache).get("tiny_htdemucs", device="cpu")
    irs = list(shared_cache.glob("openvino/*/ir/core.xml"))
    assert irs and all(list(ir.parent.parent.glob("compiled/*.blob")) for ir in irs)  # OpenVINO's compile cache

    def never(*args, **kwargs):
        raise AssertionError("a cached network was converted again")

    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.convert", never)
    again = loader(tiny_model_repo, "openvino", shared_cache).get("tiny_htdemucs", device="cpu")
    assert again.runtime == "openvino"


def test_auto_measures_once_and_records(tiny_model_repo, shared_cache, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.PAYBACK_PARAMETERS", 0)  # the tiny net is worth it
    first = loader(tiny_model_repo, "auto", shared_cache).get("tiny_htdemucs", device="cpu")
    choice = first.runtime_choice
    assert choice is not None and not choice.cached and set(choice.seconds) == {"torch", "openvino"}
    assert choice.agreement_db["openvino"] >= 60
    assert json.loads((shared_cache / f"{choice.key}.json").read_text())["runtime"] == first.runtime
    assert first.runtime == choice.runtime and bool(first.runtimes) == (choice.runtime == "openvino")
    print(choice.describe())

    def never(*args, **kwargs):
        raise AssertionError("a cached choice was converted or measured again")

    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.calibrate", never)
    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.convert", never)
    second = loader(tiny_model_repo, "auto", shared_cache).get("tiny_htdemucs", device="cpu")
    assert second.runtime_choice.cached and second.runtime == first.runtime
    assert "cache hit" in second.runtime_choice.describe()


def test_auto_converts_nothing_too_small_to_pay_back(tiny_model_repo, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    first = loader(tiny_model_repo, "auto", tmp_path).get("tiny_htdemucs", device="cpu")
    assert first.runtime == "torch" and not first.runtimes
    assert not first.runtime_choice.cached and set(first.runtime_choice.seconds) == {"torch"}
    assert not list(tmp_path.rglob("*.xml"))  # a tiny network is far below PAYBACK_PARAMETERS

    def never(*args, **kwargs):
        raise AssertionError("a cached choice was measured again")

    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.calibrate", never)
    again = loader(tiny_model_repo, "auto", tmp_path).get("tiny_htdemucs", device="cpu")
    assert again.runtime == "torch" and again.runtime_choice.cached


def test_auto_keeps_a_tiny_network_in_torch_whatever_an_older_choice_says(tiny_model_repo, tmp_path, monkeypatch):
    """Older code timed the pass, and a loaded machine once recorded OpenVINO for the tests' tiny
    network; a server reading that choice ran its jobs in OpenVINO, one int16 step off torch."""
    pytest.importorskip("openvino")
    first = loader(tiny_model_repo, "auto", tmp_path).get("tiny_htdemucs", device="cpu")
    recorded = tmp_path / f"{first.runtime_choice.key}.json"
    recorded.write_text(
        json.dumps(
            {
                "runtime": "openvino",
                "seconds": {"torch": 0.66, "openvino": 0.27},
                "agreement_db": {"torch": 999.0, "openvino": 137.4},
            }
        )
    )
    again = loader(tiny_model_repo, "auto", tmp_path).get("tiny_htdemucs", device="cpu")
    assert again.runtime == "torch" and not again.runtimes
    assert json.loads(recorded.read_text())["runtime"] == "torch"
    assert not list(tmp_path.rglob("*.xml"))


def test_missing_wheel_cuda_and_fp16_stay_in_torch(tiny_model_repo, tmp_path, monkeypatch):
    from musicsep.model.demucs_runtime import apply_runtime

    monkeypatch.setattr("musicsep.model.demucs_runtime.runtimes.runtime_available", lambda name: name != "openvino")
    for runtime in ("auto", "openvino"):
        separator = loader(tiny_model_repo, runtime, tmp_path).get("tiny_htdemucs", device="cpu")
        assert separator.runtime == "torch" and not separator.runtimes and separator.runtime_choice is None
    monkeypatch.undo()
    model = loader(tiny_model_repo, "torch", tmp_path).get("tiny_htdemucs", device="cpu").model
    for device, precision in (("cuda", "fp16"), ("cuda", "fp32"), ("cpu", "fp16")):
        separator = DemucsSeparator("m", model, torch.device(device), precision)
        apply_runtime(separator, runtime="openvino", cache_dir=tmp_path)
        assert separator.runtime == "torch" and not separator.runtimes
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.xml"))


def test_bf16_fast_mode_against_exact(tiny_model_repo, shared_cache):
    pytest.importorskip("openvino")
    from musicsep.model.demucs_runtime.openvino_core import bf16_capable

    if not bf16_capable():
        pytest.skip("OpenVINO runs no native bf16 on this CPU")
    exact = loader(tiny_model_repo, "torch", shared_cache).get("tiny_htdemucs", device="cpu")
    fast = loader(tiny_model_repo, "openvino", shared_cache).get("tiny_htdemucs", device="cpu", precision="bf16")
    assert fast.runtime == "openvino" and next(iter(fast.runtimes.values())).precision == "bf16"
    mix = noise(4.1, seed=2)
    expected, out = separate(exact, mix), separate(fast, mix)
    sdr = [agreement_db(expected[k], out[k]) for k in range(len(expected))]
    print("bf16 OpenVINO vs torch fp32, tiny model, per stem SDR dB:", [round(float(v), 1) for v in sdr])
    assert 20 < min(sdr) < 90  # really bf16 (not f32), and not broken
