"""Bench fixtures: model folders both Demucs and musicsep load, and long synthetic tracks on disk.

Weights are randomly initialised: speed and memory do not depend on their values. Everything is
written to a temporary folder and never committed.

Benches call this file as a subprocess (`build_model_folder`, `build_track`) so that their own
process never imports torch: Linux's ru_maxrss of a child (what `_measure.measure` reads through
wait4) is at least the parent's peak RSS at fork/exec time, so a big parent inflates every child.

    python bench/_fixtures.py models DIR [--no-full] [--no-small] [--ft-bag]
    python bench/_fixtures.py track PATH SECONDS
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

SOURCES = ["drums", "bass", "other", "vocals"]


def _save_th(model, folder: Path, sig: str) -> None:
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs
    save_with_checksum(
        {
            "klass": model.__class__,
            "args": args,
            "kwargs": kwargs,
            "state": get_state(model, None, half=False),
            "training_args": {},
        },
        folder / f"{sig}.th",
    )


def write_model_folder(folder: Path, full_size: bool = True, small: bool = True, ft_bag: bool = False) -> Path:
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
        _save_th(HDemucs(SOURCES, channels=4, depth=4, nfft=256, segment=10, dconv_comp=4), folder, "small")
    return folder


def write_track(path: Path, seconds: float, samplerate: int = 44100, seed: int = 0) -> Path:
    """A stereo 16-bit wav written block by block (a 60-minute track never sits in memory)."""
    import numpy as np
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


def build_model_folder(folder: Path, full_size: bool = True, small: bool = True, ft_bag: bool = False) -> Path:
    """`write_model_folder` in a child process (keeps torch out of the calling bench)."""
    flags = [] if full_size else ["--no-full"]
    flags += [] if small else ["--no-small"]
    flags += ["--ft-bag"] if ft_bag else []
    subprocess.run([sys.executable, __file__, "models", str(folder), *flags], check=True)
    return folder


def build_track(path: Path, seconds: float) -> Path:
    """`write_track` in a child process (soundfile and numpy stay out of the calling bench)."""
    subprocess.run([sys.executable, __file__, "track", str(path), str(seconds)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    models = sub.add_parser("models")
    models.add_argument("folder", type=Path)
    models.add_argument("--no-full", action="store_true")
    models.add_argument("--no-small", action="store_true")
    models.add_argument("--ft-bag", action="store_true")
    track = sub.add_parser("track")
    track.add_argument("path", type=Path)
    track.add_argument("seconds", type=float)
    args = parser.parse_args()
    if args.what == "models":
        write_model_folder(args.folder, full_size=not args.no_full, small=not args.no_small, ft_bag=args.ft_bag)
    else:
        write_track(args.path, args.seconds)


if __name__ == "__main__":
    main()
