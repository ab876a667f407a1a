"""BS-RoFormer's network between the STFTs: torch eager against OpenVINO f32, in CPU seconds per pass.

    python bench/roformer_runtime_speed.py                      # ViperX 1297 full size, 2 s and 4 s
    python bench/roformer_runtime_speed.py --seconds 8 --repeats 2
    python bench/roformer_runtime_speed.py --config tests/model/msst_configs/bs_roformer_tiny.yaml

Random-init weights from the config (speed and agreement only). The network is converted once
with musicsep's own code (model/roformer/openvino_core.py: traced on 20 frames, f32 IR) into
--work, then for each length the two runtimes alternate on the same STFT features; printed: wall
and process CPU seconds per pass, the ratio to torch, and the SDR of OpenVINO's masks against
torch's. CPU seconds are the comparison on a shared machine (wall time follows the load).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cpu import cpu_model  # noqa: E402
from musicsep.model.msst.config import load_msst_config  # noqa: E402
from musicsep.model.roformer.loader import build_roformer  # noqa: E402
from musicsep.model.roformer.openvino_core import OpenVinoRoformer, RoformerCore, convert, features  # noqa: E402
from musicsep.model.runtime.choice import agreement_db  # noqa: E402

FULL = Path(__file__).resolve().parents[1] / "tests" / "model" / "msst_configs" / "bs_roformer_viperx_1297.yaml"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(run, x: torch.Tensor) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), _cpu_s()
    out = run(x)
    return out, time.perf_counter() - wall, _cpu_s() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=FULL)
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/musicsep-roformer-runtime"))
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; load {os.getloadavg()[0]:.1f} (shared machine: other jobs may run)")
    torch.manual_seed(0)
    module = build_roformer(load_msst_config(args.config)).eval()
    ir = args.work / args.config.stem / "ir" / "core.xml"
    if not ir.exists():
        started = time.perf_counter()
        convert(module, ir)
        print(f"converted in {time.perf_counter() - started:.1f} s", flush=True)
    compiled = OpenVinoRoformer(module, ir, threads=len(os.sched_getaffinity(0)), cache_dir=ir.parent.parent / "c")
    core = RoformerCore(module).eval()
    rng = np.random.default_rng(0)
    for seconds in args.seconds:
        audio = torch.from_numpy((0.3 * rng.standard_normal((1, 2, int(44100 * seconds)))).astype(np.float32))
        with torch.inference_mode():
            x = features(module, audio)[1]
        cpu: dict[str, list[float]] = {"torch": [], "openvino": []}
        for repeat in range(args.repeats):
            with torch.inference_mode():
                reference, wall, cpu_s = _timed(lambda v: core(v).numpy(), x)
            cpu["torch"].append(cpu_s)
            print(f"  {seconds:g} s repeat {repeat + 1} torch    wall {wall:7.1f} s  cpu {cpu_s:7.1f} s", flush=True)
            out, wall, cpu_s = _timed(lambda v: compiled.masks(v).numpy(), x)
            cpu["openvino"].append(cpu_s)
            print(f"  {seconds:g} s repeat {repeat + 1} openvino wall {wall:7.1f} s  cpu {cpu_s:7.1f} s", flush=True)
        base, ov = statistics.median(cpu["torch"]), statistics.median(cpu["openvino"])
        print(
            f"{seconds:g} s ({x.shape[1]} frames): torch {base:.1f} CPU s, openvino {ov:.1f} CPU s, "
            f"ratio {ov / base:.2f}; SDR openvino vs torch {agreement_db(reference, out):.1f} dB; "
            f"load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
