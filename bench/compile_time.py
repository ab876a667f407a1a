"""What `--compile` costs and changes: compile time, and output against eager, for one model.

    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-bench python bench/compile_time.py           # tiny HDemucs
    # full-size HTDemucs (~13 min here):
    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-bench python bench/compile_time.py --full

Run it twice with the same cache folder to see what Inductor's FX-graph cache saves a second start.
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import numpy as np
import torch

from musicsep.model.compile import compile_separator
from musicsep.model.demucs_stream import DemucsSeparator

SOURCES = ["drums", "bass", "other", "vocals"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size HTDemucs instead of a tiny HDemucs")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.full:
        from demucs.htdemucs import HTDemucs

        model, frames = HTDemucs(SOURCES, segment=Fraction(39, 5)), int(44100 * 39 / 5)
    else:
        from demucs.hdemucs import HDemucs

        model = HDemucs(SOURCES, channels=4, depth=4, nfft=256, segment=2, dconv_comp=4)
        frames = 2 * 44100
    separator = DemucsSeparator("bench", model.eval(), torch.device("cpu"))
    x = np.random.default_rng(0).standard_normal((1, 2, frames)).astype(np.float32)
    eager = separator.forward(model, x)
    seconds = compile_separator(separator)
    compiled = separator.forward(model, x)
    print(f"compile + warm-up {seconds:.1f} s; max |compiled - eager| {(compiled - eager).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
