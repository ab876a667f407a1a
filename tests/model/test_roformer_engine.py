"""RoFormer engines (model/roformer/loader.py): random-initialised checkpoints saved as users have
them (UVR's file names, plain or wrapped state dicts), loaded with strict keys, streamed with MSST's
chunk rule (the loader's default) exactly like MSST's whole-track `demix` (audio-separator's rule,
the catalog's, is test_roformer_uvr_chunking.py's), and every bad file a clear `ModelUnavailable`."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from model.msst_models import CONFIGS, build_roformer_checkpoint, whole_track_demix
from musicsep.model.errors import Cancelled, ModelUnavailable
from musicsep.model.msst.config import load_msst_config
from musicsep.model.roformer import load_roformer
from musicsep.model.roformer.loader import build_roformer
from musicsep.model.spill import ArrayReader

UVR_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "uvr"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(frames: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, frames)) * 0.3).astype(np.float32)


def separate(separator, mix: np.ndarray, stems, on_chunk=lambda: None) -> np.ndarray:
    run = separator.prepare(mix.shape[-1], list(stems))
    return np.concatenate(list(run.blocks(ArrayReader(mix), on_chunk)), axis=-1)


@pytest.mark.parametrize("model", ["viperx_1297", "kim_vocals"])
def test_streamed_output_with_the_msst_rule_equals_whole_track_demix(tmp_path, model):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, model, size="tiny", seed=3)
    separator = load_roformer(ckpt, yaml_path, name=model)
    assert separator.sources == ["vocals", "instrumental"]
    config = load_msst_config(yaml_path)
    step = config.chunk_size // config.num_overlap
    mix = noise(5 * step + 777)  # not a multiple of the step; long enough for the border padding
    out = separate(separator, mix, ["vocals", "instrumental"])
    reference = whole_track_demix(separator.model, mix, config.chunk_size, config.num_overlap)[0]
    assert out.shape == (2, 2, mix.shape[-1])
    assert np.abs(out[0] - reference).max() < 1e-4
    assert np.abs(out[1] - (mix - reference)).max() < 1e-4
    assert np.abs(reference).max() > 1e-3  # the network really ran


def test_checkpoint_formats_users_have(tmp_path):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, "viperx_1297", seed=1)
    state = torch.load(ckpt, weights_only=True)
    mix = noise(9000)
    expected = separate(load_roformer(ckpt, yaml_path, name="m"), mix, ["vocals"])
    training = {  # MSST's training checkpoint: weights beside the optimiser's state
        "epoch": 3,
        "optimizer_name": "Adam",
        "optimizer_state_dict": {"state": {}, "param_groups": []},
        "model_state_dict": state,
        "best_metric": 1.5,
    }
    for label, content in [("training", training), ("state_dict", {"state_dict": state})]:
        path = tmp_path / f"{label}.ckpt"
        torch.save(content, path)
        got = separate(load_roformer(path, yaml_path, name="m"), mix, ["vocals"])
        assert np.array_equal(got, expected), label
    half = tmp_path / "half.ckpt"  # MSST's prepare_weights_for_inference --float16
    torch.save({key: value.half() for key, value in state.items()}, half)
    got = separate(load_roformer(half, yaml_path, name="m"), mix, ["vocals"])
    assert np.abs(got - expected).max() < 5e-2


def test_checkpoint_of_another_config_is_model_unavailable(tmp_path):
    ckpt, _ = build_roformer_checkpoint(tmp_path / "bs", "viperx_1297")
    _, mel_yaml = build_roformer_checkpoint(tmp_path / "mel", "kim_vocals")
    with pytest.raises(ModelUnavailable, match="does not match its config"):
        load_roformer(ckpt, mel_yaml, name="m")
    deeper = tmp_path / "deeper.yaml"
    deeper.write_text((CONFIGS / "bs_roformer_tiny.yaml").read_text().replace("  depth: 1\n", "  depth: 2\n"))
    with pytest.raises(ModelUnavailable, match=r"does not match its config .*missing \(e\.g\. layers\.1\.") as error:
        load_roformer(ckpt, deeper, name="m")
    assert str(tmp_path) not in str(error.value)
    wider = tmp_path / "wider.yaml"
    wider.write_text((CONFIGS / "bs_roformer_tiny.yaml").read_text().replace("  dim: 16\n", "  dim: 24\n"))
    with pytest.raises(ModelUnavailable, match="other shapes"):
        load_roformer(ckpt, wider, name="m")


def test_truncated_and_foreign_files_are_model_unavailable(tmp_path):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, "viperx_1297")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    text = tmp_path / "notes.ckpt"
    text.write_text("these are not weights\n")
    for path in (truncated, text, tmp_path / "absent.ckpt"):
        with pytest.raises(ModelUnavailable) as error:
            load_roformer(path, yaml_path, name="m")
        assert path.name in str(error.value) and str(tmp_path) not in str(error.value)
    with pytest.raises(ModelUnavailable, match="not a model config"):
        load_roformer(ckpt, ckpt, name="m")  # the checkpoint given as its config


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_a_pickle_that_runs_code_is_refused_unrun(tmp_path):
    _, yaml_path = build_roformer_checkpoint(tmp_path, "viperx_1297")
    _RunsCode.marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    with evil.open("wb") as handle:
        pickle.dump({"model": _RunsCode()}, handle)
    with pytest.raises(ModelUnavailable, match="cannot be read"):
        load_roformer(evil, yaml_path, name="m")
    assert not _RunsCode.marker.exists()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("  mlp_expansion_factor: 2\n", "mlp_expansion_factor"),
        ("  skip_connection: true\n", "skip_connection"),
        ("  sage_attention: true\n", "sage_attention"),
        ("  zero_dc: true\n", "zero_dc"),
        ("  linear_transformer_depth: 1\n", "linear_transformer_depth"),
        ("  hyper_connections: 4\n", "hyper_connections"),
    ],
)
def test_config_keys_the_package_lacks_are_named(tmp_path, change, key):
    ckpt, _ = build_roformer_checkpoint(tmp_path, "viperx_1297")
    path = tmp_path / "newer.yaml"
    path.write_text((CONFIGS / "bs_roformer_tiny.yaml").read_text().replace("model:\n", "model:\n" + change))
    with pytest.raises(ModelUnavailable, match=f"model.{key}"):
        load_roformer(ckpt, path, name="m")


def test_msst_keys_at_the_package_behaviour_load(tmp_path):
    ckpt, _ = build_roformer_checkpoint(tmp_path, "viperx_1297")
    path = tmp_path / "msst.yaml"
    extra = "  mlp_expansion_factor: 4\n  skip_connection: false\n  zero_dc: false\n  linear_transformer_depth: 0\n"
    path.write_text((CONFIGS / "bs_roformer_tiny.yaml").read_text().replace("model:\n", "model:\n" + extra))
    assert load_roformer(ckpt, path, name="m").sources == ["vocals", "instrumental"]


def test_config_that_is_no_roformer_is_model_unavailable(tmp_path):
    ckpt, _ = build_roformer_checkpoint(tmp_path, "viperx_1297")
    path = tmp_path / "neither.yaml"
    text = (CONFIGS / "bs_roformer_tiny.yaml").read_text()
    path.write_text(text.replace("freqs_per_bands", "bands_of_freqs"))
    with pytest.raises(ModelUnavailable, match="freqs_per_bands"):
        load_roformer(ckpt, path, name="m")
    path.write_text(text.replace("  - 33\n", "  - 34\n"))  # bands no longer sum to n_fft / 2 + 1
    with pytest.raises(ModelUnavailable, match="does not describe a valid bs_roformer"):
        load_roformer(ckpt, path, name="m")


def test_cancel_stops_within_one_chunk(tmp_path):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, "kim_vocals")
    separator = load_roformer(ckpt, yaml_path, name="m")
    forwards = []
    separator.model.register_forward_hook(lambda *_: forwards.append(1))
    calls = []

    def on_chunk() -> None:
        calls.append(1)
        raise Cancelled("the separation was cancelled")

    run = separator.prepare(60_000, ["vocals"])
    with pytest.raises(Cancelled):
        list(run.blocks(ArrayReader(noise(60_000)), on_chunk))
    assert run.chunks > 5 and len(calls) == 1 and len(forwards) == 1


def _implied_shapes(config) -> dict[str, tuple]:
    """Shapes the config alone fixes, from the BS/Mel-Band RoFormer layout (band split, mask
    estimators, depth), checked against the built module's state dict."""
    model = config.model
    dim, channels = model["dim"], 2 if model["stereo"] else 1
    shapes = {}
    inner = model["dim_head"] * model["heads"]
    for depth in range(model["depth"]):  # a time and a frequency transformer per layer
        for axis in (0, 1):
            shapes[f"layers.{depth}.{axis}.layers.0.0.to_qkv.weight"] = (3 * inner, dim)
    last = model["num_stems"] - 1
    shapes[f"mask_estimators.{last}.to_freqs.0.0.0.weight"] = (dim * 4, dim)  # mlp_expansion_factor 4
    if "freqs_per_bands" in model:
        shapes["final_norm.gamma"] = (dim,)  # Mel-Band normalises inside each layer instead
        for band, freqs in enumerate(model["freqs_per_bands"]):
            shapes[f"band_split.to_features.{band}.1.weight"] = (dim, 2 * freqs * channels)
            # the mask's last linear layer: real and imaginary parts for each channel, doubled for the GLU
            shapes[f"mask_estimators.{last}.to_freqs.{band}.0.2.weight"] = (4 * freqs * channels, dim * 4)
    return shapes


@pytest.mark.parametrize(
    ("config_name", "keys", "params_m"),
    [  # key counts of MSST's own BSRoformer / MelBandRoformer for these configs (docs: notes h5-roformer)
        ("bs_roformer_viperx_1297.yaml", 699, 159.8),
        ("mel_band_roformer_kim_vocals.yaml", 684, 228.2),
        ("mel_band_roformer_karaoke.yaml", 684, 228.2),
    ],
)
def test_full_size_configs_build_the_public_layout(config_name, keys, params_m):
    config = load_msst_config(CONFIGS / config_name)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        module = build_roformer(config)
    state = module.state_dict()
    assert len(state) == keys
    assert round(sum(p.numel() for p in module.parameters()) / 1e6, 1) == params_m
    for key, shape in _implied_shapes(config).items():
        assert tuple(state[key].shape) == shape, key
    assert len(module.layers) == config.model["depth"]


@pytest.mark.skipif(not UVR_DATA.is_dir(), reason="UVR's public model data is not on this machine")
def test_uvr_own_viperx_config_loads():
    config = load_msst_config(UVR_DATA / "model_bs_roformer_ep_317_sdr_12.9755.yaml")
    assert (config.chunk_size, config.num_overlap, config.target_instrument) == (352800, 4, "Vocals")
    assert config.model == load_msst_config(CONFIGS / "bs_roformer_viperx_1297.yaml").model
    with torch.device("meta"):
        assert len(build_roformer(config).state_dict()) == 699
