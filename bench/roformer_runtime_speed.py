"""BS-RoFormer's network between the STFTs: torch eager against OpenVINO f32, in CPU seconds per pass.

    python bench/roformer_runtime_speed.py                      # ViperX 1297 full size, one 8 s chunk
    python bench/roformer_runtime_speed.py --seconds 2 8 --repeats 2
    python bench/roformer_runtime_speed.py --config tests/model/msst_configs/bs_roformer_tiny.yaml

Random-init weights from the config (speed and agreement only). The network is converted once
with musicsep's own code (model/roformer/openvino_core.py: traced on 20 frames, f32 IR) into
--work (the conversion's time and peak RSS are printed when it runs), then for each length the
variants alternate on the same STFT features:

  torch     the package's module in eager mode (what audio-separator runs)
  dynamic   OpenVINO compiled for any length (what musicsep ran before the static shape)
  static    OpenVINO compiled for exactly this length (what musicsep runs for its chunks)

Printed per pass: wall and process CPU seconds, and the pass's peak RSS above the RSS before
it (sampled every 10 ms: the activations); per length: the ratio of each variant's median CPU
seconds to torch's and the SDR of its masks against torch's. CPU seconds are the comparison
on a shared machine (wall time follows the load).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cpu import cpu_model  # noqa: E402
from musicsep.model.msst.config import load_msst_config  # noqa: E402
from musicsep.model.roformer.loader import build_roformer  # noqa: E402
from musicsep.model.roformer.openvino_core import OpenVinoRoformer, RoformerCore, Stft, convert, features  # noqa: E402
from musicsep.model.runtime.choice import agreement_db  # noqa: E402

FULL = Path(__file__).resolve().parents[1] / "tests" / "model" / "msst_configs" / "bs_roformer_viperx_1297.yaml"
VARIANTS = ("torch", "dynamic", "static")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


class PeakRss:
    """The highest RSS while the block runs, sampled by a thread (the runtimes release the GIL)."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _timed(run, x: torch.Tensor) -> tuple[np.ndarray, float, float, float]:
    with PeakRss() as rss:
        wall, cpu = time.perf_counter(), _cpu_s()
        out = run(x)
        wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    return out, wall, cpu, rss.peak - rss.before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=FULL)
    parser.add_argument("--seconds", type=float, nargs="+", default=[8.0], help="8 s = the catalog's chunk")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--work", type=Path, default=Path("/tmp/musicsep-roformer-runtime"))
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; load {os.getloadavg()[0]:.1f} (shared machine: other jobs may run)", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module = build_roformer(load_msst_config(args.config)).eval()
    stft = Stft.of(module)
    ir = args.work / args.config.stem / "ir" / "core.xml"
    if not ir.exists():
        with PeakRss() as rss:
            started, cpu = time.perf_counter(), _cpu_s()
            convert(module, ir)
        print(
            f"converted in {time.perf_counter() - started:.1f} s wall, {_cpu_s() - cpu:.1f} CPU s, "
            f"peak RSS +{rss.peak - rss.before:.0f} MB",
            flush=True,
        )
    core = RoformerCore(module).eval()
    rng = np.random.default_rng(0)
    for seconds in args.seconds:
        audio = torch.from_numpy((0.3 * rng.standard_normal((1, 2, int(44100 * seconds)))).astype(np.float32))
        with torch.inference_mode():
            x = features(stft, audio)[1]
        runs = {}
        for variant in args.variants:
            if variant == "torch":
                runs[variant] = lambda v: core(v).numpy()
                continue
            frames = x.shape[1] if variant == "static" else None
            with PeakRss() as rss:
                started = time.perf_counter()
                compiled = OpenVinoRoformer(stft, ir, threads=args.threads, cache_dir=None, frames=frames)
            print(
                f"  {variant} compiled in {time.perf_counter() - started:.1f} s, "
                f"peak RSS +{rss.peak - rss.before:.0f} MB, kept +{_rss_mb() - rss.before:.0f} MB",
                flush=True,
            )
            runs[variant] = lambda v, c=compiled: c.masks(v).numpy()
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        outputs: dict[str, np.ndarray] = {}
        for repeat in range(args.repeats):
            for name, run in runs.items():
                with torch.inference_mode():
                    outputs[name], wall, cpu_s, rss_mb = _timed(run, x)
                cpu[name].append(cpu_s)
                print(
                    f"  {seconds:g} s repeat {repeat + 1} {name:<8} wall {wall:7.1f} s  cpu {cpu_s:7.1f} s  "
                    f"peak RSS +{rss_mb:6.0f} MB  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        medians = {name: statistics.median(values) for name, values in cpu.items()}
        base = medians.get("torch")
        reference = outputs.get("torch")
        parts = []
        for name, median in medians.items():
            part = f"{name} {median:.1f} CPU s"
            if base is not None and name != "torch":
                part += f" (ratio {median / base:.2f}, SDR {agreement_db(reference, outputs[name]):.1f} dB)"
            parts.append(part)
        print(f"{seconds:g} s ({x.shape[1]} frames): {'; '.join(parts)}; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
