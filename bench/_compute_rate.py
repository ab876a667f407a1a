"""What one HTDemucs segment costs in FLOPs, and what this machine's matmul peaks at (issue 17).

    python bench/_compute_rate.py flops      # {"gflop_per_segment": ..., "segment_frames": ...}
    python bench/_compute_rate.py peak       # {"fp32": GFLOP/s, "bf16": GFLOP/s}

Run as child processes by bench/separate_vs_demucs.py, which keeps torch out of its own process
(see _measure.py). FLOPs are counted once, with torch.utils.flop_counter, on the released
HTDemucs configuration: every convolution, transposed convolution and matmul, attention's two
matmuls included (counted through the math attention kernel: the CPU flash kernel has no FLOP
formula). The peak is the best of ten square matmuls, in torch and in OpenVINO, on the threads the
bench gives them: the rate a dense kernel reaches here, the ceiling the network's rate is read against.
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction

SIDE = 2048
#: Caps torch (oneDNN, ATen's vector kernels, MKL) and OpenVINO's oneDNN-based kernels at AVX2.
#: OpenVINO 2026.4's MLAS matmuls (34 of HTDemucs's FullyConnected layers) dispatch on CPUID
#: themselves and are not capped, so the OpenVINO legs are a partial emulation: an upper bound for a
#: real AVX2-only CPU (docs/performance.md, "HTDemucs on OpenVINO"). OpenVINO still reports BF16
#: under the cap (it reads CPUID), where a real AVX2 CPU would not: the bench drops "openvino fast".
AVX2 = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OV_CPU_MAX_ISA": "AVX2",
}


def segments(seconds: float, segment_frames: int, overlap: float = 0.25, samplerate: int = 44100) -> int:
    """Chunks the engine (and apply_model) runs over a track: one per stride."""
    return len(range(0, int(seconds * samplerate), int((1 - overlap) * segment_frames)))


def count_flops() -> dict[str, float]:
    import torch
    from demucs.htdemucs import HTDemucs
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = HTDemucs(["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()
    frames = int(model.segment * model.samplerate)
    counter = FlopCounterMode(display=False)
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        model(torch.zeros(1, 2, frames))
    return {"gflop_per_segment": counter.get_total_flops() / 1e9, "segment_frames": frames}


def _best_rate(run) -> float:
    """GFLOP/s of the fastest of ten SIDE^3 matmuls after a warm-up."""
    run()
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 2 * SIDE**3 / best / 1e9


def matmul_peak() -> dict[str, float]:
    """The best square-matmul rate per precision of torch (MKL / oneDNN) and OpenVINO (its CPU
    plugin's own matmul kernels: torch's fp32 path is not the fastest one on every CPU)."""
    import os

    import numpy as np
    import openvino
    import openvino.opset13 as ops
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    rates = {}
    from musicsep.model.devices import cpu_runs_natively

    precisions = [("fp32", torch.float32, "f32")]
    if cpu_runs_natively("bf16"):  # emulated, torch's bf16 matmul runs at 0.3 GFLOP/s for minutes
        precisions.append(("bf16", torch.bfloat16, "bf16"))
    for name, dtype, hint in precisions:
        a, b = torch.randn(SIDE, SIDE, dtype=dtype), torch.randn(SIDE, SIDE, dtype=dtype)
        weights = np.random.default_rng(0).standard_normal((SIDE, SIDE)).astype(np.float32)
        x = ops.parameter([SIDE, SIDE], np.float32)
        model = openvino.Model([ops.matmul(x, ops.constant(weights), False, False)], [x])
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        request = openvino.Core().compile_model(model, "CPU", config).create_infer_request()
        feed = [weights]
        rates[f"{name} torch"] = _best_rate(lambda a=a, b=b: torch.mm(a, b))
        rates[f"{name} openvino"] = _best_rate(lambda request=request, feed=feed: request.infer(feed))
        rates[name] = max(rates[f"{name} torch"], rates[f"{name} openvino"])
    return rates


if __name__ == "__main__":
    print(json.dumps(count_flops() if sys.argv[1] == "flops" else matmul_peak()))
