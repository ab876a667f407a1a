"""Seconds per 7.8 s segment of a full-size HTDemucs forward pass, by threading and batching.

    python bench/forward_speed.py                       # all variants, 3 repeats each
    python bench/forward_speed.py --variants b1 b2 --repeats 5

Variants (all fp32 unless named): fused-b1 = one segment per forward as Demucs runs it
(PyTorch's fused self-attention "fast path"); b1 = the same with attention through
scaled_dot_product_attention, as musicsep runs it; b2 = two segments per forward;
pair = two Python threads, one segment each, one intra-op thread
each (Demucs's `-j 2`); bf16-b1 / bf16-b2 = b1 / b2 under bfloat16 autocast. Variants alternate
within each repeat so machine load hits all alike; medians are printed, with the ratio to b1.
The process's own peak RSS (VmHWM) is printed last: run one variant alone to read its memory,
e.g. `--variants b1 --repeats 1` against `--variants pair --repeats 1`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import torch
from demucs.htdemucs import HTDemucs

SEGMENT_FRAMES = 343980  # int(44100 * 39 / 5)


def _forward(model, batch: torch.Tensor, bf16: bool = False, fused: bool = False) -> torch.Tensor:
    torch.backends.mha.set_fastpath_enabled(fused)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        return model(batch).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["fused-b1", "b1", "b2", "pair", "bf16-b1", "bf16-b2"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(cores)
    torch.manual_seed(0)
    model = HTDemucs(["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()
    x = torch.randn(2, 2, SEGMENT_FRAMES)
    pool = ThreadPoolExecutor(2)

    def pair() -> None:
        def one(i: int) -> torch.Tensor:
            torch.set_num_threads(1)
            return _forward(model, x[i : i + 1])

        list(pool.map(one, range(2)))
        torch.set_num_threads(cores)

    runs = {
        "fused-b1": (1, lambda: _forward(model, x[:1], fused=True)),
        "b1": (1, lambda: _forward(model, x[:1])),
        "b2": (2, lambda: _forward(model, x)),
        "pair": (2, pair),
        "bf16-b1": (1, lambda: _forward(model, x[:1], bf16=True)),
        "bf16-b2": (2, lambda: _forward(model, x, bf16=True)),
    }
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    for name in args.variants:  # warm-up: oneDNN primitive caches, allocator
        runs[name][1]()
    for _ in range(args.repeats):
        for name in args.variants:
            segments, run = runs[name]
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / segments)
    base_name = next((name for name in ("fused-b1", "b1") if name in times), None)
    base = statistics.median(times[base_name]) if base_name else None
    print(f"threads {cores}, thread {threading.get_native_id()}, torch {torch.__version__}")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = f"  {base / median:.2f}x vs {base_name}" if base else ""
        print(f"{name:<8} {median:6.2f} s/segment{ratio}  ({', '.join(f'{v:.2f}' for v in values)})")
    proc_status = Path("/proc/self/status")
    status = proc_status.read_text() if proc_status.exists() else ""
    peak = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    if peak:
        print(f"peak RSS of this process (VmHWM): {int(peak[0]) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
