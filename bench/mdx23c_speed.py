"""Seconds per minute of audio for full-size MDX23C InstVoc HQ (random weights: speed only).

The random-initialised network is saved under UVR's file name beside its YAML in a temporary
folder and loaded through `load_mdx23c`, so the timed path is musicsep's own (checkpoint reading,
key check, strict load, the separator's forward with its autocast); the load time is printed too.

    python bench/mdx23c_speed.py                        # fp32 and bf16 autocast, batch 1, 2 repeats
    python bench/mdx23c_speed.py --variants fp32-b1 fp32-b2 --repeats 3
    python bench/mdx23c_speed.py --frames 32          # 1/8 chunk, scaled: the quick bf16 ratio

A forward is one 261,120-sample chunk (5.92 s). MSST's chunking (musicsep.model.msst.stream) runs
one forward per step of chunk // num_overlap = 32,640 samples with the config's num_overlap 8, so
a minute of audio costs 44100 * 60 / 32640 = 81.07 forwards (plus the border chunks once per
track); seconds per minute = median seconds per chunk * 81.07. The baseline is fp32 batch 1
(the default path); the other variants print their ratio to it. Variants alternate inside each
repeat so machine load hits all alike. On a shared machine the absolute figures drift with the
load (printed), the ratios much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _cpu import cpu_model  # noqa: E402
from musicsep.model.mdx23c import TfcTdfNet, hyperparams_from_config, load_mdx23c  # noqa: E402
from musicsep.model.msst.config import load_msst_config  # noqa: E402

CONFIG = ROOT / "tests" / "model" / "msst_configs" / "mdx23c_instvoc_hq.yaml"
UVR_NAME = "MDX23C-8KFFT-InstVoc_HQ"
VARIANTS = {  # name -> (chunks per forward, precision)
    "fp32-b1": (1, "fp32"),
    "bf16-b1": (1, "bf16"),
    "fp32-b2": (2, "fp32"),
}


def _forward(separator, audio: np.ndarray) -> float:
    started = time.perf_counter()
    separator.forward(audio)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["fp32-b1", "bf16-b1"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--frames",
        type=int,
        default=256,
        help="STFT frames per forward, a multiple of 32 (256 = the config's chunk; 32 for a quick bf16 ratio:"
        " bf16 autocast is emulated on CPUs without avx512_bf16 and takes minutes per chunk)",
    )
    args = parser.parse_args()
    config = load_msst_config(CONFIG)
    step = config.chunk_size // config.num_overlap
    forwards_per_minute = config.samplerate * 60 / step
    torch.manual_seed(0)
    model = TfcTdfNet(hyperparams_from_config(config.raw)).eval()
    weights = sum(t.numel() for t in model.state_dict().values())
    folder = Path(tempfile.mkdtemp(prefix="mdx23c_speed_"))
    torch.save(model.state_dict(), folder / f"{UVR_NAME}.ckpt")
    (folder / f"{UVR_NAME}.yaml").write_text(CONFIG.read_text())
    del model
    separators, load_s = {}, {}
    for precision in sorted({VARIANTS[v][1] for v in args.variants}):
        started = time.perf_counter()
        separators[precision] = load_mdx23c(
            folder / f"{UVR_NAME}.ckpt", folder / f"{UVR_NAME}.yaml", name=UVR_NAME, precision=precision
        )
        load_s[precision] = time.perf_counter() - started
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    batch = max(VARIANTS[v][0] for v in args.variants)
    hop = config.raw["audio"]["hop_length"]
    samples = (args.frames - 1) * hop
    scale = (config.chunk_size // hop + 1) / args.frames  # the network's cost grows linearly with frames
    audio = (0.3 * np.random.default_rng(0).standard_normal((batch, 2, samples))).astype(np.float32)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; machine shared")
    print(
        f"MDX23C InstVoc HQ, {weights:,} weights, chunk {config.chunk_size}, num_overlap "
        f"{config.num_overlap}: {forwards_per_minute:.2f} chunks per minute of audio; load_mdx23c "
        + ", ".join(f"{p} {s:.1f} s" for p, s in load_s.items())
    )
    _forward(separators.get("fp32") or separators["bf16"], audio[:1, :, : 31 * 1024])  # warm-up: 32 frames
    seconds: dict[str, list[float]] = {name: [] for name in args.variants}
    for repeat in range(args.repeats):
        for name in args.variants:
            size, precision = VARIANTS[name]
            per_chunk = _forward(separators[precision], audio[:size]) / size * scale
            seconds[name].append(per_chunk)
            print(
                f"  repeat {repeat + 1} {name}: {per_chunk:.2f} s per chunk ({args.frames} frames timed), "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    baseline = statistics.median(seconds[args.variants[0]])
    for name in args.variants:
        median = statistics.median(seconds[name])
        print(
            f"{name}: {median:.2f} s per chunk, {median * forwards_per_minute / 60:.1f} min per minute of audio "
            f"({median * forwards_per_minute:.0f} s), ratio to {args.variants[0]} {median / baseline:.2f}"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
