"""Random-initialised RoFormer checkpoints on disk, named as UVR and audio-separator name them.

Weights of the public models cannot be downloaded here, so tests and benchmarks build the same
networks with random weights from our configs (tests/model/msst_configs/) and save them the way
users have them: a plain state dict `.ckpt` beside its `.yaml`.

    from model.msst_models import build_roformer_checkpoint   # tests/ is on pytest's pythonpath
    ckpt, yaml = build_roformer_checkpoint(folder, "viperx_1297", size="tiny")

`whole_track_demix` is the tests' reference for the streamed output: MSST's `demix` arithmetic
(generic mode, batch size 1) written plainly over the whole track in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musicsep.model.msst.config import load_msst_config
from musicsep.model.roformer.loader import build_roformer

CONFIGS = Path(__file__).parent / "msst_configs"

#: Public model -> (our full-size config, its small variant, UVR's checkpoint and config file names).
MODELS = {
    "viperx_1297": (
        "bs_roformer_viperx_1297.yaml",
        "bs_roformer_tiny.yaml",
        "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
        "model_bs_roformer_ep_317_sdr_12.9755.yaml",
    ),
    "kim_vocals": (
        "mel_band_roformer_kim_vocals.yaml",
        "mel_band_roformer_tiny.yaml",
        "MelBandRoformer.ckpt",
        "config_vocals_mel_band_roformer_kim.yaml",
    ),
    "karaoke": (
        "mel_band_roformer_karaoke.yaml",
        "mel_band_roformer_tiny.yaml",
        "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt",
        "config_mel_band_roformer_karaoke.yaml",
    ),
}


def build_roformer_checkpoint(
    folder: Path, config_path: Path | str, size: str = "tiny", seed: int = 0
) -> tuple[Path, Path]:
    """Write a random-initialised checkpoint and its config into `folder`; return both paths.

    `config_path` is one of `MODELS` (saved under UVR's file names; `size` picks the full-size
    config or its small variant) or the path of any MSST RoFormer YAML (saved beside it under
    that file's name, `.ckpt` for `.yaml`; `size` is then ignored).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if str(config_path) in MODELS:
        full, tiny, ckpt_name, yaml_name = MODELS[str(config_path)]
        if size not in ("tiny", "full"):
            raise ValueError("size is 'tiny' or 'full'")
        source = CONFIGS / (full if size == "full" else tiny)
    else:
        source = Path(config_path)
        ckpt_name, yaml_name = source.with_suffix(".ckpt").name, source.name
    yaml_path = folder / yaml_name
    if source.resolve() != yaml_path.resolve():
        shutil.copyfile(source, yaml_path)
    torch.manual_seed(seed)
    module = build_roformer(load_msst_config(yaml_path))
    ckpt_path = folder / ckpt_name
    torch.save(module.state_dict(), ckpt_path)
    return ckpt_path, yaml_path


def whole_track_demix(model: torch.nn.Module, mix: np.ndarray, chunk: int, num_overlap: int) -> np.ndarray:
    """MSST's demix on the whole track, batch size 1: (outputs, channels, frames)."""
    mix = torch.from_numpy(mix)
    fade, step = chunk // 10, chunk // num_overlap
    border = chunk - step
    length = mix.shape[-1]
    padded = length > 2 * border and border > 0
    if padded:
        mix = F.pad(mix[None], (border, border), mode="reflect")[0]
    base = torch.ones(chunk)
    base[-fade:] = torch.linspace(1, 0, fade)
    base[:fade] = torch.linspace(0, 1, fade)
    result = counter = None
    i = 0
    with torch.inference_mode():
        while i < mix.shape[1]:
            part = mix[:, i : i + chunk]
            seg = part.shape[-1]
            mode = "reflect" if seg > chunk // 2 else "constant"
            part = F.pad(part[None], (0, chunk - seg), mode=mode)
            x = model(part)
            x = x[:, None] if x.ndim == 3 else x
            if result is None:
                result = torch.zeros(x.shape[1], *mix.shape)
                counter = torch.zeros(x.shape[1], *mix.shape)
            i += step
            window = base.clone()
            if i - step == 0:
                window[:fade] = 1
            elif i >= mix.shape[1]:
                window[-fade:] = 1
            result[..., i - step : i - step + seg] += x[0, ..., :seg] * window[:seg]
            counter[..., i - step : i - step + seg] += window[:seg]
    out = np.nan_to_num((result / counter).numpy(), nan=0.0)
    return out[..., border:-border] if padded else out
