"""MDX23C checkpoints load by their UVR file names and stream exactly like MSST's whole-track `demix`.

A random-initialised TFC-TDF v3 is saved as users have it on disk (a plain state dict in a
`.ckpt`, UVR's file name, beside its MSST YAML), loaded through `load_mdx23c`, and streamed; the
stems must equal `whole_track_demix` below, our reading of MSST's `demix` (generic mode, batch 1:
border reflect padding, chunks every `chunk // num_overlap`, linear fades of `chunk // 10` except
at the track's ends, the sum divided by the summed weights) run on the whole clip in memory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from model.msst_models import whole_track_demix
from musicsep.model.errors import ModelUnavailable
from musicsep.model.mdx23c import TfcTdfNet, hyperparams_from_config, load_mdx23c
from musicsep.model.msst.config import load_msst_config
from musicsep.model.spill import ArrayReader

CONFIGS = Path(__file__).parent / "msst_configs"
SMALL = CONFIGS / "mdx23c_small.yaml"
HQ = CONFIGS / "mdx23c_instvoc_hq.yaml"
UVR_NAME = "MDX23C-8KFFT-InstVoc_HQ.ckpt"  # the file name UVR and audio-separator use


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save_random_model(folder: Path, config: Path = SMALL, seed: int = 0, name: str = UVR_NAME) -> TfcTdfNet:
    """A random TfcTdfNet saved as `folder/name` beside a copy of its YAML; norms perturbed so they count."""
    torch.manual_seed(seed)
    model = TfcTdfNet(hyperparams_from_config(load_msst_config(config).raw)).eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.ndim == 1:
                tensor.add_(0.1 * torch.randn(tensor.shape))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / name)
    (folder / Path(name).with_suffix(".yaml").name).write_text(config.read_text())
    return model


def _noise(frames: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, frames)) * 0.3).astype(np.float32)


def _stream(separator, mix: np.ndarray, stems: list[str], batch_size: int = 1) -> np.ndarray:
    options = type("Options", (), {"batch_size": batch_size, "shifts": 0})()
    run = separator.prepare(mix.shape[-1], stems, options)
    chunks = []
    blocks = list(run.blocks(ArrayReader(mix), lambda: chunks.append(1)))
    assert len(chunks) == run.chunks
    return np.concatenate(blocks, axis=-1)


@pytest.mark.parametrize(
    ("frames", "batch_size"),
    [
        (10_001, 1),  # border-padded, not a multiple of the 960-sample step, last chunk reflect-padded
        (10_001, 3),  # batched forwards: same stems
        (5_000, 1),  # too short for the border padding
    ],
)
def test_streamed_stems_equal_whole_track_demix(tmp_path, frames, batch_size):
    model = _save_random_model(tmp_path)
    separator = load_mdx23c(tmp_path / UVR_NAME, tmp_path / "MDX23C-8KFFT-InstVoc_HQ.yaml", name="mdx23c_test")
    assert separator.sources == ["vocals", "instrumental"]
    assert (separator.chunk_size, separator.num_overlap, separator.samplerate) == (3840, 4, 44100)
    mix = _noise(frames)
    streamed = _stream(separator, mix, ["vocals", "instrumental"], batch_size)
    reference = whole_track_demix(model, mix, 3840, 4)
    assert streamed.shape == reference.shape == (2, 2, frames)
    assert np.abs(streamed - reference).max() < 1e-4
    assert np.abs(reference).max() > 0.01  # a real signal, not two zeros agreeing


def test_single_target_checkpoint_gives_target_and_mix_minus_target(tmp_path):
    raw = load_msst_config(SMALL).raw
    raw = copy.deepcopy(raw) | {"training": {"instruments": ["Vocals", "Instrumental"], "target_instrument": "Vocals"}}
    config = tmp_path / "vocals.yaml"
    config.write_text(yaml.safe_dump(raw))
    model = _save_random_model(tmp_path / "m", config, name="vocals.ckpt")
    separator = load_mdx23c(tmp_path / "m" / "vocals.ckpt", config, name="vocals_test")
    mix = _noise(7_777)
    instrumental, vocals = _stream(separator, mix, ["instrumental", "vocals"])
    reference = whole_track_demix(model, mix, 3840, 4)[0]
    assert np.abs(vocals - reference).max() < 1e-4
    assert np.abs(instrumental - (mix - reference)).max() < 1e-4


def test_checkpoint_wrapped_by_a_trainer_loads(tmp_path):
    model = _save_random_model(tmp_path)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.ckpt")
    separator = load_mdx23c(tmp_path / "wrapped.ckpt", SMALL, name="wrapped")
    mix = _noise(4_000)
    assert np.abs(_stream(separator, mix, ["vocals"])[0] - whole_track_demix(model, mix, 3840, 4)[0]).max() < 1e-4


def _refused(tmp_path: Path, checkpoint: Path, config: Path, words: str) -> None:
    with pytest.raises(ModelUnavailable, match=words) as error:
        load_mdx23c(checkpoint, config, name="broken")
    assert str(tmp_path) not in str(error.value)


def test_checkpoint_of_another_config_is_refused_naming_what_differs(tmp_path):
    _save_random_model(tmp_path)
    wider = tmp_path / "wider.yaml"
    wider.write_text(SMALL.read_text().replace("num_channels: 8", "num_channels: 16"))
    _refused(tmp_path, tmp_path / UVR_NAME, wider, r"does not match its config wider\.yaml: .* other shapes")
    deeper = tmp_path / "deeper.yaml"
    deeper.write_text(SMALL.read_text().replace("num_scales: 2", "num_scales: 3").replace("dim_t: 16", "dim_t: 32"))
    _refused(tmp_path, tmp_path / UVR_NAME, deeper, "the config needs are missing")


def test_checkpoint_with_a_weight_too_many_or_too_few_is_refused(tmp_path):
    state = _save_random_model(tmp_path).state_dict()
    torch.save(state | {"extra.weight": torch.zeros(3)}, tmp_path / "extra.ckpt")
    _refused(tmp_path, tmp_path / "extra.ckpt", SMALL, r"1 weight\(s\) the config does not know \(e.g. extra.weight\)")
    del state["final_conv.2.weight"]
    torch.save(state, tmp_path / "short.ckpt")
    missing = r"1 weight\(s\) the config needs are missing \(e.g. final_conv.2.weight\)"
    _refused(tmp_path, tmp_path / "short.ckpt", SMALL, missing)


def test_truncated_or_foreign_checkpoint_files_are_refused(tmp_path):
    _save_random_model(tmp_path)
    whole = (tmp_path / UVR_NAME).read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[: len(whole) // 2])
    _refused(tmp_path, tmp_path / "cut.ckpt", SMALL, "cut.ckpt cannot be read: it is truncated")
    (tmp_path / "text.ckpt").write_text("<html>404</html>")
    _refused(tmp_path, tmp_path / "text.ckpt", SMALL, "text.ckpt cannot be read: it is truncated")
    torch.save([torch.zeros(2)], tmp_path / "list.ckpt")
    _refused(tmp_path, tmp_path / "list.ckpt", SMALL, "holds no model weights")
    _refused(tmp_path, tmp_path / "absent.ckpt", SMALL, "absent.ckpt is missing")


def test_yaml_that_is_not_an_mdx23c_config_is_refused(tmp_path):
    _save_random_model(tmp_path)
    roformer = tmp_path / "roformer.yaml"
    roformer.write_text(
        "audio: {chunk_size: 352800, sample_rate: 44100}\n"
        "model: {dim: 384, depth: 12, stereo: true, num_stems: 1, freqs_per_bands: !!python/tuple [2, 2]}\n"
        "training: {instruments: [vocals, other], target_instrument: vocals}\n"
        "inference: {num_overlap: 2}\n"
    )
    _refused(tmp_path, tmp_path / UVR_NAME, roformer, "not an MDX23C config: it lacks model.num_subbands")
    prose = tmp_path / "notes.yaml"
    prose.write_text("just some notes\n")
    _refused(tmp_path, tmp_path / UVR_NAME, prose, "notes.yaml is not a model config")
    odd_chunk = tmp_path / "odd.yaml"
    odd_chunk.write_text(SMALL.read_text().replace("chunk_size: 3840", "chunk_size: 4352"))
    _refused(
        tmp_path, tmp_path / UVR_NAME, odd_chunk, "4352 samples gives 18 STFT frames, which is not a multiple of 4"
    )


@pytest.mark.slow
def test_full_size_instvoc_hq_checkpoint_loads_and_streams(tmp_path):
    """The public layout, saved under UVR's file name, through the whole path with every weight used.

    A full 261,120-sample chunk takes 50-120 s here (bench/mdx23c_speed.py), over this test's
    budget; the catalog's chunk override runs the same full-size network on 31,744 samples (32
    frames, the U-Net's smallest) instead. A clip under one step is one chunk, zero-padded, weight 1
    over the clip, so the stems are that forward's output; a hook records it.
    """
    _save_random_model(tmp_path, HQ)
    separator = load_mdx23c(
        tmp_path / UVR_NAME, tmp_path / "MDX23C-8KFFT-InstVoc_HQ.yaml", name="hq", chunk_size=31 * 1024
    )
    assert separator.sources == ["vocals", "instrumental"] and separator.num_overlap == 8
    seen = []
    separator.model.register_forward_hook(lambda module, args, out: seen.append((args[0].clone(), out.clone())))
    mix = _noise(3_000)  # under one 3,968-sample step: a single chunk
    streamed = _stream(separator, mix, ["vocals", "instrumental"])
    [(given, out)] = seen
    assert given.shape == (1, 2, 31 * 1024)
    assert torch.equal(given[0, :, :3_000], torch.from_numpy(mix)) and not given[0, :, 3_000:].any()
    assert np.abs(streamed - out[0, ..., :3_000].numpy()).max() < 1e-6
    assert np.isfinite(streamed).all() and np.abs(streamed).max() > 0.01


def test_bf16_autocast_runs_and_stays_near_fp32(tmp_path):
    _save_random_model(tmp_path)
    mix = _noise(6_000)
    fp32 = _stream(load_mdx23c(tmp_path / UVR_NAME, SMALL, name="fp32"), mix, ["vocals"])
    bf16 = _stream(load_mdx23c(tmp_path / UVR_NAME, SMALL, name="bf16", precision="bf16"), mix, ["vocals"])
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    assert 0 < np.abs(bf16 - fp32).max() < 0.05 * np.abs(fp32).max()
