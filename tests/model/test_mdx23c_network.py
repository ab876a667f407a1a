"""MDX23C's network has the public checkpoints' layout, and its config is checked before anything is built.

The expected keys and shapes of InstVoc HQ are facts measured on the reference implementation
(ZFTurbo's models/mdx23c_tfc_tdf_v3.py built from UVR's model_2_stem_full_band_8k.yaml, see
bench/mdx23c_reference_check.py): a checkpoint with these keys is what users have on disk.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from musicsep.model.errors import ModelUnavailable
from musicsep.model.mdx23c import TfcTdfNet, hyperparams_from_config
from musicsep.model.msst.config import load_msst_config

CONFIGS = Path(__file__).parent / "msst_configs"

#: The reference's state dict for InstVoc HQ: 319 keys, 111,990,272 values (the 427 MiB fp32 file).
HQ_KEYS = 319
HQ_VALUES = 111_990_272
HQ_SHAPES = {
    "first_conv.weight": (128, 16, 1, 1),
    "encoder_blocks.0.tfc_tdf.blocks.0.tfc1.0.weight": (128,),
    "encoder_blocks.0.tfc_tdf.blocks.0.tdf.2.weight": (256, 1024),
    "encoder_blocks.0.tfc_tdf.blocks.0.tdf.5.weight": (1024, 256),
    "encoder_blocks.4.downscale.conv.2.weight": (768, 640, 2, 2),
    "bottleneck_block.blocks.0.tfc1.2.weight": (768, 768, 3, 3),
    "bottleneck_block.blocks.1.tdf.2.weight": (8, 32),
    "decoder_blocks.0.upscale.conv.2.weight": (768, 640, 2, 2),
    "decoder_blocks.0.tfc_tdf.blocks.0.shortcut.weight": (640, 1280, 1, 1),
    "decoder_blocks.4.tfc_tdf.blocks.0.tfc1.2.weight": (128, 256, 3, 3),
    "final_conv.0.weight": (128, 144, 1, 1),
    "final_conv.2.weight": (32, 128, 1, 1),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _raw(name: str) -> dict:
    return copy.deepcopy(load_msst_config(CONFIGS / name).raw)


def test_instvoc_hq_config_builds_the_public_checkpoint_layout():
    state = TfcTdfNet(hyperparams_from_config(_raw("mdx23c_instvoc_hq.yaml"))).state_dict()
    assert len(state) == HQ_KEYS
    assert sum(t.numel() for t in state.values()) == HQ_VALUES
    assert {key: tuple(state[key].shape) for key in HQ_SHAPES} == HQ_SHAPES
    assert not any("window" in key for key in state)  # the STFT window is not in the checkpoints


def test_small_model_gives_one_waveform_per_stem_of_the_input_length():
    model = TfcTdfNet(hyperparams_from_config(_raw("mdx23c_small.yaml"))).eval()
    audio = torch.randn(2, 2, 3840, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = model(audio)
    assert out.shape == (2, 2, 2, 3840)  # batch, (Vocals, Instrumental), channels, samples
    assert torch.isfinite(out).all()
    with torch.inference_mode():  # chunks are independent: batching changes nothing
        alone = model(audio[1:2])
    assert torch.allclose(alone[0], out[1], atol=1e-5)


def test_single_target_config_outputs_one_stem():
    raw = _raw("mdx23c_small.yaml")
    raw["training"]["target_instrument"] = "Vocals"
    params = hyperparams_from_config(raw)
    assert params.targets == ("Vocals",)
    with torch.inference_mode():
        assert TfcTdfNet(params).eval()(torch.zeros(1, 2, 3840)).shape == (1, 1, 2, 3840)


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        ("model", "num_subbands", None, "lacks model.num_subbands"),
        ("model", "scale", [2], "model.scale must be two positive integers"),
        ("model", "act", "swish", "model.act must be gelu, relu or elu"),
        ("model", "norm", "GroupNormX", "group count"),
        ("model", "growth", 0, "model.growth must be a positive integer"),
        ("audio", "dim_f", 250, "multiple of num_subbands"),
        ("audio", "dim_f", 2048, "exceeds the 513 bins"),
        ("model", "bottleneck_factor", 64, "bottleneck_factor is larger"),
    ],
)
def test_configs_that_cannot_describe_an_mdx23c_network_are_refused(section, key, value, words):
    raw = _raw("mdx23c_small.yaml")
    if value is None:
        del raw[section][key]
    else:
        raw[section][key] = value
    with pytest.raises(ModelUnavailable, match=words):
        hyperparams_from_config(raw)


def test_a_roformer_config_is_not_an_mdx23c_config():
    raw = _raw("mdx23c_small.yaml")
    raw["model"] = {"dim": 384, "depth": 8, "stereo": True, "num_stems": 1}
    with pytest.raises(ModelUnavailable, match="not an MDX23C config: it lacks model.num_subbands"):
        hyperparams_from_config(raw)


def test_a_chunk_the_unet_cannot_halve_is_refused():
    params = hyperparams_from_config(_raw("mdx23c_small.yaml"))
    params.check_chunk(3840)
    with pytest.raises(ModelUnavailable, match="not a multiple of 4"):
        params.check_chunk(3840 + 256)
