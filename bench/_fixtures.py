"""Bench fixtures: model folders both Demucs and musicsep load, and long synthetic tracks on disk.

Weights are randomly initialised: speed and memory do not depend on their values. Everything is
written to a temporary folder and never committed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

SOURCES = ["drums", "bass", "other", "vocals"]


def _save_th(model, folder: Path, sig: str) -> None:
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs
    save_with_checksum({"klass": model.__class__, "args": args, "kwargs": kwargs,
                        "state": get_state(model, None, half=False), "training_args": {}},
                       folder / f"{sig}.th")


def write_model_folder(folder: Path, full_size: bool = True, small: bool = True,
                       ft_bag: bool = False) -> Path:
    """`htdemucs` (default HTDemucs, segment 39/5 s, as released), `small` (a fast HDemucs),
    and optionally `htdemucs_ft` (four full-size members, one per stem)."""
    import torch
    import yaml
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if full_size:
        _save_th(HTDemucs(SOURCES, segment=Fraction(39, 5)), folder, "955717e8")
        (folder / "htdemucs.yaml").write_text(yaml.safe_dump({"models": ["955717e8"]}))
    if ft_bag:
        sigs = [f"f7e0c4b{i}" for i in range(4)]
        for sig in sigs:
            _save_th(HTDemucs(SOURCES, segment=Fraction(39, 5)), folder, sig)
        eye = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
        (folder / "htdemucs_ft.yaml").write_text(yaml.safe_dump({"models": sigs, "weights": eye}))
    if small:
        _save_th(HDemucs(SOURCES, channels=4, depth=4, nfft=256, segment=10, dconv_comp=4),
                 folder, "small")
    return folder


def write_track(path: Path, seconds: float, samplerate: int = 44100, seed: int = 0) -> Path:
    """A stereo 16-bit wav written block by block (a 60-minute track never sits in memory)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    block = samplerate * 10
    with sf.SoundFile(str(path), "w", samplerate, 2, subtype="PCM_16") as out:
        done = 0
        total = int(seconds * samplerate)
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / samplerate
            beat = np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 60 * t)
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * np.floor(t / 4 % 4)) * t)
            noise = 0.02 * rng.standard_normal(n)
            left, right = beat + tone + noise, beat + 0.7 * tone + noise
            out.write((0.5 * np.stack([left, right], axis=1)).astype(np.float32))
            done += n
    return path
