"""Seconds per 7.8 s segment of a full-size HTDemucs forward pass, by threading and batching.

    python bench/forward_speed.py                       # all variants, 3 repeats each
    python bench/forward_speed.py --variants b1 b2 --repeats 5
    python bench/forward_speed.py --variants b1 ov-b1 ov-pair bf16-b1 ov-bf16-b1 ov-bf16-pair


Variants (all fp32 unless named): fused-b1 = one segment per forward as Demucs runs it
(PyTorch's fused self-attention "fast path"); b1 = the same with attention through
scaled_dot_product_attention, as musicsep runs it; b2 = two segments per forward;
pair = two Python threads, one segment each, one intra-op thread
each (Demucs's `-j 2`); bf16-b1 / bf16-b2 = b1 / b2 under bfloat16 autocast; ov-b1 / ov-bf16-b1 =
the network in OpenVINO f32 / bf16 as musicsep runs it (model/demucs_runtime/: one stream of all
threads, one segment at a time); ov-pair / ov-bf16-pair = two OpenVINO streams of one thread with
two segments in flight. The OpenVINO IR is converted once into --ir (kept for later runs; delete it
after a change to the conversion). Variants alternate within each repeat so machine load hits all
alike; medians are printed, wall and process CPU seconds (the comparison on a shared machine),
with the ratio to b1.
The process's own peak RSS (VmHWM) is printed last: run one variant alone to read its memory,
e.g. `--variants b1 --repeats 1` against `--variants pair --repeats 1`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import torch
from demucs.htdemucs import HTDemucs

from musicsep.model.demucs_runtime.openvino_core import OpenVinoHTDemucs, convert

SEGMENT_FRAMES = 343980  # int(44100 * 39 / 5)


def _forward(model, batch: torch.Tensor, bf16: bool = False, fused: bool = False) -> torch.Tensor:
    torch.backends.mha.set_fastpath_enabled(fused)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        return model(batch).float()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def openvino_runs(model, x: torch.Tensor, ir_dir: Path, cores: int, pool: ThreadPoolExecutor) -> dict:
    """The ov-* variants: (segments per call, call), converting the network on first use."""
    ir = ir_dir / "ir" / "core.xml"
    if not ir.exists():
        started = time.monotonic()
        convert(model, ir)
        print(f"converted the network to {ir} in {time.monotonic() - started:.1f} s", flush=True)
    runs = {}
    for precision, prefix in (("fp32", "ov-"), ("bf16", "ov-bf16-")):
        one = OpenVinoHTDemucs(model, ir, precision=precision, threads=cores, streams=1, cache_dir=None)
        two = OpenVinoHTDemucs(model, ir, precision=precision, threads=cores, streams=2, cache_dir=None)
        runs[f"{prefix}b1"] = (1, lambda one=one: one(x[:1]))
        runs[f"{prefix}pair"] = (2, lambda two=two: list(pool.map(lambda i: two(x[i : i + 1]), range(2))))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["fused-b1", "b1", "b2", "pair", "bf16-b1", "bf16-b2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ir", type=Path, default=Path(tempfile.gettempdir()) / "musicsep-forward-speed-ir")
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
    if any(name.startswith("ov-") for name in args.variants):
        runs |= openvino_runs(model, x, args.ir, cores, pool)
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    cpu: dict[str, list[float]] = {name: [] for name in args.variants}
    for name in args.variants:  # warm-up: oneDNN primitive caches, allocator
        runs[name][1]()
    for _ in range(args.repeats):
        for name in args.variants:
            segments, run = runs[name]
            start, start_cpu = time.perf_counter(), _cpu_s()
            run()
            times[name].append((time.perf_counter() - start) / segments)
            cpu[name].append((_cpu_s() - start_cpu) / segments)
    base_name = next((name for name in ("fused-b1", "b1") if name in times), None)
    base = statistics.median(times[base_name]) if base_name else None
    print(f"threads {cores}, thread {threading.get_native_id()}, torch {torch.__version__}")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = f"  {base / median:.2f}x vs {base_name}" if base else ""
        print(
            f"{name:<12} {median:6.2f} s/segment, {statistics.median(cpu[name]):6.2f} CPU s/segment{ratio}"
            f"  ({', '.join(f'{v:.2f}' for v in values)})"
        )
    proc_status = Path("/proc/self/status")
    status = proc_status.read_text() if proc_status.exists() else ""
    peak = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    if peak:
        print(f"peak RSS of this process (VmHWM): {int(peak[0]) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
