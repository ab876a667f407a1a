"""Seconds per minute of audio for full-size RoFormers (random weights: speed only, not quality).

    python bench/roformer_speed.py                                   # ViperX 1297 and Kim, fp32 + bf16
    python bench/roformer_speed.py --models viperx_1297 --repeats 3 --threads 1
    python bench/roformer_speed.py --models viperx_1297 --end-to-end   # + the full-size check below

Each timed call is one forward over one 352,800-sample chunk (8 s) of the model's config, the
unit the streaming engine (musicsep.model.msst.stream) runs. MSST's chunking runs one forward
per step of chunk // num_overlap, so a minute of audio costs 44100 * 60 / step forwards (plus a
border chunk or two once per track); seconds per minute = median seconds per forward * that.
num_overlap comes from our copies of UVR's configs: 4 for ViperX 1297 (30 forwards a minute),
1 for Kim (7.5). The baseline is fp32; bf16 autocast prints its ratio to it. Variants alternate
inside each repeat so the machine's load hits both alike: on a shared machine the absolute
figures drift with the load (printed before and after), the ratios much less.

`--end-to-end` also does what a slow test would (a full-size forward takes minutes on the shared
2-core test machine, far over the suite's budget): a random-initialised checkpoint saved under
UVR's file name, loaded through `load_roformer` with strict keys, 3 s streamed (two chunks with
num_overlap 4), vocals + instrumental checked against the mix.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _cpu import cpu_model  # noqa: E402
from musicsep.model.msst.config import load_msst_config  # noqa: E402
from musicsep.model.roformer import load_roformer  # noqa: E402
from musicsep.model.roformer.loader import build_roformer  # noqa: E402
from musicsep.model.spill import ArrayReader  # noqa: E402

CONFIGS = ROOT / "tests" / "model" / "msst_configs"
MODELS = {  # name -> (full-size config, its tiny variant for a quick run of this script's code)
    "viperx_1297": ("bs_roformer_viperx_1297.yaml", "bs_roformer_tiny.yaml"),
    "kim_vocals": ("mel_band_roformer_kim_vocals.yaml", "mel_band_roformer_tiny.yaml"),
}
PRECISIONS = ("fp32", "bf16")


def _forward(model: torch.nn.Module, chunk: torch.Tensor, precision: str) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of one forward (CPU time drifts less with load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        model(chunk).float()
    return time.perf_counter() - wall, time.process_time() - cpu


def end_to_end(name: str, size: str) -> None:
    """Full-size checkpoint on disk -> load_roformer -> streamed separation of 3 s."""
    import tempfile

    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from model.msst_models import build_roformer_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        ckpt, yaml_path = build_roformer_checkpoint(Path(folder), name, size=size)
        separator = load_roformer(ckpt, yaml_path, name=name)
        loaded = time.perf_counter()
        mix = (np.random.default_rng(0).standard_normal((2, 3 * 44100)) * 0.1).astype(np.float32)
        run = separator.prepare(mix.shape[-1], separator.sources)
        out = np.concatenate(list(run.blocks(ArrayReader(mix), lambda: None)), axis=-1)
        done = time.perf_counter()
    residual = float(np.abs(out.sum(axis=0) - mix).max())
    ok = out.shape == (2, 2, mix.shape[-1]) and bool(np.isfinite(out).all()) and residual < 1e-5
    print(
        f"\nend to end {name}: {ckpt.name} saved + loaded strictly in {loaded - started:.1f} s; "
        f"{run.chunks} chunks streamed in {done - loaded:.1f} s; stems {separator.sources}, "
        f"max |sum - mix| {residual:.1e}: {'OK' if ok else 'FAILED'}"
    )
    if not ok:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: check the script only")
    parser.add_argument("--end-to-end", action="store_true", help="also the full-size load-and-stream check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} intra-op thread(s)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)")
    for name in args.models:
        config = load_msst_config(CONFIGS / MODELS[name][0 if args.size == "full" else 1])
        step = config.chunk_size // config.num_overlap
        per_minute = config.samplerate * 60 / step
        torch.manual_seed(0)
        model = build_roformer(config).eval()
        params = sum(p.numel() for p in model.parameters())
        chunk = torch.randn(1, config.num_channels, config.chunk_size) * 0.1
        _forward(model, chunk[..., : config.chunk_size // 8], "fp32")  # first-call allocations, once
        times: dict[str, list[tuple[float, float]]] = {precision: [] for precision in PRECISIONS}
        print(
            f"\n{name}: {params / 1e6:.1f} M parameters, chunk {config.chunk_size} samples, "
            f"num_overlap {config.num_overlap}, {per_minute:.2f} forwards per minute of audio",
            flush=True,
        )
        for _ in range(args.repeats):
            for precision in PRECISIONS:
                wall, cpu = _forward(model, chunk, precision)
                times[precision].append((wall, cpu))
                print(f"  {precision} forward: {wall:.1f} s wall, {cpu:.1f} CPU s", flush=True)
        base = statistics.median(wall for wall, _ in times["fp32"])
        base_cpu = statistics.median(cpu for _, cpu in times["fp32"])
        for precision in PRECISIONS:
            wall = statistics.median(w for w, _ in times[precision])
            cpu = statistics.median(c for _, c in times[precision])
            print(
                f"  {precision}: {wall:.1f} s wall per chunk -> {wall * per_minute:.0f} s per minute of audio "
                f"({cpu * per_minute:.0f} CPU s); ratio to fp32 {wall / base:.2f} wall, {cpu / base_cpu:.2f} CPU"
            )
        del model
    if args.end_to_end:
        for name in args.models:
            end_to_end(name, args.size)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
