"""MDX-Net graphs in OpenVINO against onnxruntime, and `auto`'s measured, cached choice.

The OpenVINO tests need the openvino wheel (the `server` extra has it) and are skipped where it is
missing; the choice logic runs without it (then `auto` and `openvino` both mean onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.mdx_graphs import INST_HQ_4, build_mdx_onnx
from model.test_mdx_engine import SMALL, noise_clip, reference_primary, separate
from musicsep.model.errors import ModelUnavailable
from musicsep.model.mdx import load_mdx
from musicsep.model.runtime import choice as runtime_choice


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    return build_mdx_onnx(tmp_path_factory.mktemp("mdx-rt") / "Kim_Vocal_2.onnx", SMALL, size="tiny", seed=3)


@pytest.fixture
def openvino():
    return pytest.importorskip("openvino")


@pytest.mark.parametrize("frames", [19_999, 100])
def test_openvino_streams_the_reference_output(openvino, small_model, tmp_path, frames):
    """The same graph compiled by OpenVINO (f32) gives onnxruntime's stems within 1e-4."""
    mix = noise_clip(frames)
    separator = load_mdx(small_model, SMALL, name="Kim_Vocal_2", runtime="openvino", runtime_cache=tmp_path)
    assert separator.runtime == "openvino"
    _, out = separate(separator, mix, ["vocals", "instrumental"])
    expected = reference_primary(small_model, SMALL, mix)
    assert np.sqrt(np.mean(expected**2)) > 0.05
    assert np.max(np.abs(out[0] - expected)) < 1e-4
    np.testing.assert_allclose(out[1], mix - out[0] * np.float32(SMALL.compensate), atol=1e-6)


def test_openvino_at_inst_hq_4_geometry_matches_onnxruntime(openvino, tmp_path):
    """UVR's real interface (2560 x 256, n_fft 5120) through both runtimes, two lanes each."""
    path = build_mdx_onnx(tmp_path / "UVR-MDX-NET-Inst_HQ_4.onnx", INST_HQ_4, size="tiny")
    mix = noise_clip(300_000, seed=4)
    outs = {}
    for runtime in ("onnxruntime", "openvino"):
        separator = load_mdx(path, INST_HQ_4, name="UVR-MDX-NET-Inst_HQ_4", runtime=runtime, runtime_cache=tmp_path)
        _, outs[runtime] = separate(separator, mix, ["instrumental", "vocals"])
    assert np.max(np.abs(outs["openvino"] - outs["onnxruntime"])) < 1e-4


def test_openvino_refuses_a_damaged_file_as_model_unavailable(openvino, small_model, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(small_model.read_bytes()[:2000])
    with pytest.raises(ModelUnavailable, match="not a readable ONNX model"):
        load_mdx(broken, SMALL, name="broken", runtime="openvino", runtime_cache=tmp_path)


def test_auto_calibrates_once_then_reads_the_choice_back(openvino, small_model, tmp_path, monkeypatch):
    """The first load measures both runtimes and writes the choice; the next one measures nothing."""
    first = load_mdx(small_model, SMALL, name="Kim_Vocal_2", runtime="auto", runtime_cache=tmp_path)
    assert first.runtime_choice is not None and not first.runtime_choice.cached
    assert set(first.runtime_choice.seconds) == {"onnxruntime", "openvino"}
    assert first.runtime_choice.agreement_db["openvino"] >= runtime_choice.AGREEMENT_DB
    saved = json.loads((tmp_path / f"{first.runtime_choice.key}.json").read_text())
    assert saved["runtime"] == first.runtime

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached choice was measured again")

    monkeypatch.setattr("musicsep.model.mdx.runtimes.calibrate", no_measuring)
    second = load_mdx(small_model, SMALL, name="Kim_Vocal_2", runtime="auto", runtime_cache=tmp_path)
    assert second.runtime_choice.cached and second.runtime == first.runtime
    mix = noise_clip(9_000)
    assert np.max(np.abs(separate(second, mix, ["vocals"])[1] - separate(first, mix, ["vocals"])[1])) < 1e-4


def test_a_runtime_that_disagrees_is_never_chosen(tmp_path):
    """However fast, a runtime whose output is off by more than the agreement floor loses."""
    x = np.linspace(-1, 1, 10_000, dtype=np.float32)
    choice = runtime_choice.calibrate(
        {"onnxruntime": lambda: np.sin(x), "openvino": lambda: np.sin(x) * 1.01},
        reference="onnxruntime",
        key="k",
        folder=tmp_path,
    )
    assert choice.runtime == "onnxruntime" and choice.agreement_db["openvino"] < 60


def test_without_the_openvino_wheel_every_runtime_is_onnxruntime(small_model, tmp_path, monkeypatch):
    monkeypatch.setattr("musicsep.model.mdx.runtimes.runtime_available", lambda name: name != "openvino")
    for runtime in ("auto", "openvino", "torch", "onnxruntime"):
        separator = load_mdx(small_model, SMALL, name="Kim_Vocal_2", runtime=runtime, runtime_cache=tmp_path)
        assert separator.runtime == "onnxruntime" and separator.runtime_choice is None
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_the_cache_key_changes_with_file_versions_and_cpu(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    cpu = runtime_choice.cpu_fingerprint()
    versions = {"onnxruntime": "1.32.0", "openvino": "2026.4.1"}
    base = runtime_choice.cache_key(runtime_choice.file_digest(model), versions, cpu)
    assert runtime_choice.cache_key(runtime_choice.file_digest(model), versions, cpu) == base
    assert runtime_choice.cache_key(runtime_choice.file_digest(model), {**versions, "openvino": "2026.5"}, cpu) != base
    assert runtime_choice.cache_key(runtime_choice.file_digest(model), versions, {**cpu, "model": "EPYC"}) != base
    assert runtime_choice.cache_key(runtime_choice.file_digest(model), versions, {**cpu, "flags": "avx2"}) != base
    model.write_bytes(b"two!")  # another size, so another (path, size, mtime) memo
    assert runtime_choice.cache_key(runtime_choice.file_digest(model), versions, cpu) != base
    assert set(cpu) == {"model", "flags", "cpus"}


def test_an_unreadable_saved_choice_is_measured_again(tmp_path):
    (tmp_path / "k.json").write_text("{not json")
    assert runtime_choice.cached_choice(tmp_path, "k", ("onnxruntime",)) is None
    (tmp_path / "k.json").write_text(json.dumps({"runtime": "tensorrt"}))
    assert runtime_choice.cached_choice(tmp_path, "k", ("onnxruntime", "openvino")) is None
