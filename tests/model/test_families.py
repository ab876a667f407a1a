"""UVR / MSST models load by their UVR and audio-separator file names from MUSICSEP_MODEL_REPO.

Real weights cannot be downloaded here: the files are random-weight models built by the families'
test builders (tests/model/mdx_graphs.py, tests/model/msst_models.py), saved under the names a
UVR or audio-separator model folder has.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import synth_music
from model.mdx_graphs import INST_HQ_4, build_mdx_onnx
from model.msst_models import CONFIGS, build_roformer_checkpoint
from musicsep.model.catalog import load_catalog
from musicsep.model.errors import ModelUnavailable
from musicsep.model.loading import ModelLoader
from musicsep.model.mdx23c import TfcTdfNet, hyperparams_from_config
from musicsep.model.msst.config import load_msst_config
from musicsep.model.separate import SeparationRequest, separate_file


@pytest.fixture(scope="module")
def uvr_folder(tmp_path_factory):
    """Inst HQ 4 under UVR's name, Kim's Mel-Band RoFormer under UVR's names (`MelBandRoformer.ckpt`
    + `config_vocals_mel_band_roformer_kim.yaml`), and a RoFormer the catalog does not know."""
    folder = tmp_path_factory.mktemp("uvr_models")
    build_mdx_onnx(folder / "UVR-MDX-NET-Inst_HQ_4.onnx", INST_HQ_4, size="tiny", seed=4)
    build_roformer_checkpoint(folder, "kim_vocals", size="tiny", seed=5)
    shutil.copy(CONFIGS / "bs_roformer_tiny.yaml", folder / "my_roformer.yaml")
    build_roformer_checkpoint(folder, folder / "my_roformer.yaml", seed=6)
    return folder


def test_catalog_entries_have_what_the_loader_and_the_page_need():
    catalog = load_catalog()
    for name in ("UVR-MDX-NET-Inst_HQ_4", "UVR-MDX-NET-Inst_HQ_3", "Kim_Vocal_2", "UVR_MDXNET_KARA_2"):
        info = catalog[name]
        assert info.arch == "mdx" and info.weights == (f"{name}.onnx",)
        assert {"n_fft", "dim_f", "dim_t", "compensate", "primary"} <= set(info.mdx)
        assert info.downloads[f"{name}.onnx"].startswith(
            "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
        )
    assert catalog["bs_roformer_viperx_1297"].weights == ("model_bs_roformer_ep_317_sdr_12.9755.ckpt",)
    assert catalog["mdx23c_instvoc_hq"].config == ("model_2_stem_full_band_8k.yaml",)
    assert "vocals_mel_band_roformer.ckpt" in catalog["mel_band_roformer_kim"].weights
    assert catalog["htdemucs"].arch == "demucs" and catalog["htdemucs"].quality.basis == "MUSDB18-HQ test"
    assert catalog["UVR-MDX-NET-Inst_HQ_4"].quality.sdr == {"instrumental": 15.86}
    for info in catalog.values():
        if info.arch == "ensemble":
            assert all(member in catalog for member in info.members)
        elif info.arch not in ("demucs", "dsp"):
            assert set(info.stems) == {"vocals", "instrumental"} and info.primary in info.stems


def test_catalog_checkpoint_models_chunk_as_audio_separator():
    catalog = load_catalog()
    roformers = [info for info in catalog.values() if info.arch in ("bs_roformer", "mel_band_roformer")]
    assert len(roformers) == 4
    for info in roformers:
        assert (info.chunking, info.chunk_size) == ("uvr", 352800), info.name
        assert info.num_overlap in (2, 4), info.name
    mdx23c = catalog["mdx23c_instvoc_hq"]
    assert (mdx23c.chunking, mdx23c.chunk_size, mdx23c.num_overlap) == ("uvr", 261120, 8)
    assert catalog["htdemucs"].chunking is None and catalog["UVR-MDX-NET-Inst_HQ_4"].chunking is None


def test_mdx23c_loads_by_uvr_names_with_audio_separators_mdx23c_rule(tmp_path):
    config = tmp_path / "model_2_stem_full_band_8k.yaml"  # the small network, with InstVoc's hop
    config.write_text((CONFIGS / "mdx23c_small.yaml").read_text().replace("hop_length: 256", "hop_length: 1024"))
    torch.manual_seed(2)
    model = TfcTdfNet(hyperparams_from_config(load_msst_config(config).raw))
    torch.save(model.state_dict(), tmp_path / "MDX23C-8KFFT-InstVoc_HQ.ckpt")
    separator = ModelLoader(repo=tmp_path, offline=True).get("MDX23C-8KFFT-InstVoc_HQ", device="cpu")
    assert (separator.chunking, separator.family) == ("uvr", "mdx23c")
    assert (separator.chunk_size, separator.num_overlap) == (261120, 8)


def test_availability_is_answered_from_file_names(uvr_folder, tmp_path):
    loader = ModelLoader(repo=uvr_folder, offline=True)
    for name in (
        "UVR-MDX-NET-Inst_HQ_4",
        "UVR-MDX-NET-Inst_HQ_4.onnx",
        "mel_band_roformer_kim",
        "MelBandRoformer",
        "my_roformer",
    ):
        assert loader.knows(name) and loader.is_available(name), name
    assert not loader.is_available("bs_roformer_viperx_1297")
    assert not loader.is_available("ensemble_best_vocals")  # one of its models is missing
    folder = tmp_path / "garbage"
    folder.mkdir()
    (folder / "UVR-MDX-NET-Inst_HQ_3.onnx").write_bytes(b"not a model")
    garbage = ModelLoader(repo=folder, offline=True)
    assert garbage.is_available("UVR-MDX-NET-Inst_HQ_3")  # a name, not a read
    with pytest.raises(ModelUnavailable):
        garbage.get("UVR-MDX-NET-Inst_HQ_3")


def test_models_load_by_uvr_names_with_the_catalog_chunking(uvr_folder):
    loader = ModelLoader(repo=uvr_folder, offline=True)
    mdx = loader.get("UVR-MDX-NET-Inst_HQ_4.onnx", device="cpu")
    assert mdx.name == "UVR-MDX-NET-Inst_HQ_4" and mdx.sources == ["instrumental", "vocals"]
    assert loader.get("UVR-MDX-NET-Inst_HQ_4", device="cpu") is mdx  # cached under its catalog name
    kim = loader.get("mel_band_roformer_kim", device="cpu")
    assert set(kim.sources) == {"vocals", "instrumental"}
    assert (kim.chunk_size, kim.num_overlap) == (352800, 2)  # the catalog's, not UVR's YAML's overlap 1
    assert kim.chunking == "uvr"
    unknown = loader.get("my_roformer", device="cpu")
    assert set(unknown.sources) == {"vocals", "instrumental"}
    assert (unknown.chunking, unknown.chunk_size, unknown.num_overlap) == ("uvr", 6400, 4)  # from its YAML
    assert loader.cache_bytes() >= sum(p.stat().st_size for p in uvr_folder.glob("*.onnx"))


def test_two_stems_on_a_two_stem_model_is_its_own_other_stem(uvr_folder, tmp_path):
    loader = ModelLoader(repo=uvr_folder, offline=True)
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.3 * synth_music(1.3).T, 44100, subtype="FLOAT")
    common = {"model": "UVR-MDX-NET-Inst_HQ_4", "format": "float32", "clip": "none", "device": "cpu"}
    both = separate_file(clip, tmp_path / "both", SeparationRequest(**common), loader=loader)
    two = separate_file(clip, tmp_path / "two", SeparationRequest(two_stems="vocals", **common), loader=loader)
    assert sorted(two.stems) == ["no_vocals", "vocals"]

    def read(path):
        return sf.read(path, dtype="float32")[0]

    assert np.array_equal(read(two.stems["no_vocals"]), read(both.stems["instrumental"]))
    assert np.array_equal(read(two.stems["vocals"]), read(both.stems["vocals"]))


def test_unknown_onnx_without_uvr_hash_table_names_what_is_missing(uvr_folder, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(uvr_folder / "UVR-MDX-NET-Inst_HQ_4.onnx", folder / "someones_model.onnx")
    loader = ModelLoader(repo=folder, offline=True)
    assert loader.knows("someones_model")
    with pytest.raises(ModelUnavailable, match="n_fft, dim_f, dim_t, compensate and primary stem") as info:
        loader.get("someones_model")
    assert str(folder) not in info.value.message


@pytest.mark.parametrize("damage", ["truncated checkpoint", "yaml that is no model config", "other config"])
def test_bad_checkpoint_files_are_model_unavailable(uvr_folder, tmp_path, damage):
    folder = tmp_path / "models"
    shutil.copytree(uvr_folder, folder)
    ckpt, config = folder / "MelBandRoformer.ckpt", folder / "config_vocals_mel_band_roformer_kim.yaml"
    if damage == "truncated checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[:5000])
    elif damage == "yaml that is no model config":
        config.write_text("services:\n  web:\n    image: nginx\n")
    else:  # keys that do not match: a BS-RoFormer's config for a Mel-Band checkpoint
        shutil.copy(CONFIGS / "bs_roformer_tiny.yaml", config)
    with pytest.raises(ModelUnavailable) as info:
        ModelLoader(repo=folder, offline=True).get("mel_band_roformer_kim", device="cpu")
    assert str(folder) not in info.value.message


def test_a_missing_family_model_falls_back_and_says_why(uvr_folder):
    loader = ModelLoader(repo=uvr_folder, offline=True, fallback=("dsp",))
    separator, reason = loader.resolve("bs_roformer_viperx_1297", device="cpu")
    assert separator.name == "dsp"
    assert "model_bs_roformer_ep_317_sdr_12.9755.ckpt" in reason and "used 'dsp' instead" in reason


class _StandInSeparator:
    """A stand-in for a family separator (the engine contract, no model): chunk k is `mix * (k + 1)`.
    On 'cuda' its pass runs out of memory at chunk 3, as a CUDA allocation failure reads."""

    sources = ["vocals", "instrumental"]
    samplerate, audio_channels, normalize = 44100, 2, False

    def __init__(self, device: str) -> None:
        self.device = device

    def prepare(self, frames, stems, options=None):
        separator = self

        class Pass:
            chunks = -(-frames // 1000)

            def blocks(self, reader, on_chunk):
                for k, start in enumerate(range(0, frames, 1000)):
                    if separator.device == "cuda" and k == 3:
                        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
                    on_chunk()
                    mix = reader.read(start, min(frames, start + 1000))
                    yield np.stack([mix * (k + 1)] * len(stems))

        return Pass()


def test_device_out_of_memory_continues_on_the_cpu_with_the_same_output():
    from musicsep.model.cpu_fallback import CpuFallbackSeparator
    from musicsep.model.spill import ArrayReader

    audio = np.random.default_rng(0).standard_normal((2, 5500)).astype(np.float32)
    separator = CpuFallbackSeparator(lambda device, precision: _StandInSeparator(device), "cuda", "fp32")
    run = separator.prepare(audio.shape[-1], ["vocals"])
    reported = []
    out = np.concatenate(list(run.blocks(ArrayReader(audio), lambda: reported.append(1))), axis=-1)
    clean = CpuFallbackSeparator(lambda device, precision: _StandInSeparator(device), "cpu", "fp32")
    expected = np.concatenate(list(clean.prepare(5500, ["vocals"]).blocks(ArrayReader(audio), lambda: None)), -1)
    assert np.array_equal(out, expected)
    assert len(reported) == run.chunks == 6  # the chunks run twice are reported once
    assert separator.fell_back and separator.device == "cpu"
    assert separator.recoveries == ["out of cuda memory; continuing on the CPU"]
