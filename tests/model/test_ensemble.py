"""Ensembles stream with constant memory and equal the ensemble of the members' whole-track outputs.

The members are real models of two families: random-weight MDX-Net ONNX graphs (tests/model/mdx_graphs.py,
UVR's interface, small geometry, two different chunk lengths) found through UVR's hash table in the
model folder, and a tiny random-weight HTDemucs (tests/conftest.py) for the member that normalises.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import synth_music
from model.mdx_graphs import build_mdx_onnx
from musicsep.model.demucs_stream import PassOptions
from musicsep.model.ensemble import METHODS
from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.loading import ModelLoader
from musicsep.model.mdx import MdxParams, uvr_model_hash
from musicsep.model.names import UnknownModel
from musicsep.model.separate import SeparationRequest, separate_file
from musicsep.model.spill import ArrayReader

#: Two MDX-Net geometries with different chunk lengths (15,360 and 31,744 samples).
INST = MdxParams(n_fft=2048, dim_f=256, dim_t=16, compensate=1.02, primary="instrumental")
VOC = MdxParams(n_fft=2048, dim_f=256, dim_t=32, compensate=1.01, primary="vocals")
STEMS = ["vocals", "instrumental"]


@pytest.fixture(scope="module")
def mdx_folder(tmp_path_factory):
    """`tiny_inst.onnx` and `tiny_voc.onnx` with UVR's hash table beside them (`model_data.json`)."""
    folder = tmp_path_factory.mktemp("ensemble_models")
    table = {}
    for name, params, seed, uvr_stem in (("tiny_inst", INST, 1, "Instrumental"), ("tiny_voc", VOC, 2, "Vocals")):
        path = build_mdx_onnx(folder / f"{name}.onnx", params, size="tiny", seed=seed)
        table[uvr_model_hash(path)] = {
            "mdx_n_fft_scale_set": params.n_fft,
            "mdx_dim_f_set": params.dim_f,
            "mdx_dim_t_set": int(np.log2(params.dim_t)),
            "compensate": params.compensate,
            "primary_stem": uvr_stem,
        }
    (folder / "model_data.json").write_text(json.dumps(table))
    return folder


def _track(seconds: float) -> np.ndarray:
    audio = synth_music(seconds) + 0.05 * np.random.default_rng(3).standard_normal((2, int(seconds * 44100)))
    return audio[:, :-37].astype(np.float32)  # not a multiple of any chunk or hop


def _run(separator, audio: np.ndarray, stems: list[str]) -> np.ndarray:
    run = separator.prepare(audio.shape[-1], stems, PassOptions())
    return np.concatenate(list(run.blocks(ArrayReader(audio), lambda: None)), axis=-1)


def _whole_track_ensemble(outputs: list[np.ndarray], method: str, weights=None) -> np.ndarray:
    """The reference: the algorithm applied once to the members' complete outputs (torch's STFT)."""
    stacked = np.stack(outputs).astype(np.float64)  # (M, S, C, n)
    if method == "avg_wave":
        w = np.asarray(weights or [1.0] * len(outputs), np.float64)
        return np.tensordot(w / w.sum(), stacked, axes=(0, 0))
    if method == "median_wave":
        return np.median(stacked, axis=0)
    frames = stacked.shape[-1]
    flat = torch.from_numpy(stacked).reshape(-1, frames)
    window = torch.hann_window(2048, dtype=torch.float64)
    spec = torch.stft(flat, 2048, 512, window=window, center=True, pad_mode="constant", return_complex=True)
    spec = spec.reshape(*stacked.shape[:-1], *spec.shape[-2:])
    magnitude = spec.abs()
    index = magnitude.argmax(0) if method == "max_spec" else magnitude.argmin(0)
    picked = torch.gather(spec, 0, index[None])[0]
    wave = torch.istft(picked.reshape(-1, *picked.shape[-2:]), 2048, 512, window=window, center=True, length=frames)
    return wave.reshape(*stacked.shape[1:]).numpy()


@pytest.mark.parametrize("method", METHODS)
def test_streamed_ensemble_equals_the_whole_track_ensemble(mdx_folder, method):
    loader = ModelLoader(repo=mdx_folder, offline=True)
    ensemble = loader.ensemble(["tiny_inst", "tiny_voc"], method)
    audio = _track(3.0)
    streamed = _run(ensemble, audio, STEMS)
    members = [_run(loader.get(name), audio, STEMS) for name in ("tiny_inst", "tiny_voc")]
    assert np.abs(members[0] - members[1]).max() > 1e-2  # two different models
    reference = _whole_track_ensemble(members, method)
    assert streamed.shape == reference.shape == (2, 2, audio.shape[-1])
    assert np.abs(streamed - reference).max() < 1e-4


def test_weights_scale_the_average(mdx_folder):
    loader = ModelLoader(repo=mdx_folder, offline=True)
    audio = _track(1.5)
    streamed = _run(loader.ensemble(["tiny_inst", "tiny_voc"], "avg_wave", [3.0, 1.0]), audio, STEMS)
    members = [_run(loader.get(name), audio, STEMS) for name in ("tiny_inst", "tiny_voc")]
    assert np.abs(streamed - _whole_track_ensemble(members, "avg_wave", [3.0, 1.0])).max() < 1e-5


def _peak_bytes(separator, seconds: float) -> int:
    audio = _track(seconds)
    run = separator.prepare(audio.shape[-1], STEMS, PassOptions())
    tracemalloc.start()
    try:
        total = 0
        for block in run.blocks(ArrayReader(audio), lambda: None):
            total += block.shape[-1]  # each block is dropped at once, as the stem writers do
        assert total == audio.shape[-1]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_ensemble_memory_does_not_grow_with_the_track(mdx_folder):
    """max_spec: the algorithm that buffers most (the STFT frames' context, on top of the alignment).

    tracemalloc counts every thread, and the members' model threads run up to their lanes' chunks
    ahead at moments that vary from run to run: the same track's peak moves by 1 MB on a loaded
    machine and by 3.4 MB once in CI (17.6 -> 21.0 MB). So the bound is on growth, over 8x the
    track: the 14 more seconds would add 19.8 MB if the ensemble kept even its members' float32
    output, and a third of that fails the test; jitter, bounded by the lanes, does not."""
    ensemble = ModelLoader(repo=mdx_folder, offline=True).ensemble(["tiny_inst", "tiny_voc"], "max_spec")
    short, long = _peak_bytes(ensemble, 2.0), _peak_bytes(ensemble, 16.0)
    kept_per_second = 2 * len(STEMS) * 2 * 44100 * 4  # members x stems x channels x rate x float32
    assert long - short < 14 * kept_per_second / 3, (short, long)


def test_ensemble_with_a_normalising_demucs_member_through_separate_file(mdx_folder, tiny_model_repo, tmp_path):
    """HTDemucs reads the track normalised and MDX-Net raw, as each does alone; a Demucs model's
    `instrumental` is the sum of its drums, bass and other, like `--two-stems vocals`."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_model_repo, folder)
    for item in mdx_folder.iterdir():
        shutil.copy(item, folder / item.name)
    loader = ModelLoader(repo=folder, offline=True)
    clip = tmp_path / "clip.wav"  # quiet: the random models' stems stay within the float WAV's +-1
    sf.write(clip, 0.3 * synth_music(2.7).T, 44100, subtype="FLOAT")
    common = {"format": "float32", "clip": "none", "device": "cpu"}
    result = separate_file(
        clip, tmp_path / "ens", SeparationRequest(ensemble=["tiny_htdemucs", "tiny_voc"], **common), loader=loader
    )
    assert result.model == "tiny_htdemucs+tiny_voc" and sorted(result.stems) == ["instrumental", "vocals"]
    demucs = separate_file(
        clip, tmp_path / "d", SeparationRequest(model="tiny_htdemucs", two_stems="vocals", **common), loader=loader
    )
    mdx = separate_file(clip, tmp_path / "m", SeparationRequest(model="tiny_voc", **common), loader=loader)

    def read(path):
        return sf.read(path, dtype="float32")[0]

    for stem, demucs_stem in (("vocals", "vocals"), ("instrumental", "no_vocals")):
        expected = (read(demucs.stems[demucs_stem]) + read(mdx.stems[stem])) / 2
        assert np.abs(read(result.stems[stem]) - expected).max() < 1e-5, stem


def test_bad_ensembles_are_clear_errors(mdx_folder):
    loader = ModelLoader(repo=mdx_folder, offline=True)
    with pytest.raises(InvalidOptions, match="2 to 4"):
        loader.ensemble(["tiny_inst"])
    with pytest.raises(InvalidOptions, match="avg_wave only"):
        loader.ensemble(["tiny_inst", "tiny_voc"], "median_wave", [1.0, 2.0])
    with pytest.raises(InvalidOptions, match="unknown ensemble method"):
        loader.ensemble(["tiny_inst", "tiny_voc"], "max_wave")
    with pytest.raises(UnknownModel):
        loader.ensemble(["tiny_inst", "no_such_model"])
    with pytest.raises(ModelUnavailable, match="UVR-MDX-NET-Inst_HQ_4.onnx"):  # a preset whose files are not here
        loader.get("ensemble_low_resource")
    assert not loader.is_available("ensemble_low_resource")
