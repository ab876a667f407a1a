"""Seconds per minute of audio of a full-size MDX-Net (UVR Inst HQ 4 scale, random weights) on the CPU.

    python bench/mdx_speed.py                      # musicsep's session against onnxruntime's defaults
    python bench/mdx_speed.py --variants t1 t2 default --repeats 3 --htdemucs

The graph is tests/model/mdx_graphs.py's full-size TFC-TDF U-Net (~14.7 M weights, 59 MB, UVR's
interface) built once into --work. Each variant streams the same clip of two chunks through
musicsep's MdxSeparator; only the onnxruntime session differs:
- `musicsep`: what load_mdx opens (on two CPUs or more: two chunks at once, each run with half
  the usable cores as intra-op threads; no spin-waiting; session.cpu_lanes says why);
- `t2`: one chunk at a time over all usable cores, no spin-waiting (musicsep's previous default);
- `t1`: one intra-op thread, no spin-waiting;
- `default`: `SessionOptions()` untouched, as python-audio-separator opens it (the baseline);
- `openvino`: musicsep's lanes with the graph compiled by OpenVINO in f32 (`--runtime openvino`);
- `auto`: what `--runtime auto` picks (its calibration, or the cached choice, is printed).
Variants alternate within each repeat so machine load hits all alike; medians are printed with
the ratio to the baseline. Seconds per minute = seconds per chunk x chunks per minute (one chunk
every 195,840 samples at overlap 0.25: 13.5 per minute). `--stft` also times the engine's numpy
STFT pair against torch.stft/istft (two threads and one) on one chunk. `--htdemucs` adds a
random-init HTDemucs segment (7.8 s, musicsep's CPU path) as a second baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _cpu import cpu_model  # noqa: E402
from model.mdx_graphs import INST_HQ_4, INST_HQ_4_FILE, build_mdx_onnx, parameter_count  # noqa: E402
from musicsep.model.mdx import MdxSeparator, load_mdx  # noqa: E402
from musicsep.model.mdx.session import cpu_threads  # noqa: E402

SAMPLERATE = 44100
CLIP_FRAMES = 200_000  # two chunks: offsets 0 and 195,840 start inside the track


def _separator(path: Path, variant: str) -> MdxSeparator:
    if variant in ("musicsep", "openvino", "auto"):
        runtime = "onnxruntime" if variant == "musicsep" else variant
        separator = load_mdx(path, INST_HQ_4, name="UVR-MDX-NET-Inst_HQ_4", runtime=runtime)
        if separator.runtime_choice is not None:
            print(f"  auto: {separator.runtime_choice.describe()}", flush=True)
        return separator
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if variant in ("t1", "t2"):
        options.intra_op_num_threads = cpu_threads() if variant == "t2" else 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return MdxSeparator("UVR-MDX-NET-Inst_HQ_4", session, INST_HQ_4, device="cpu")


class _Reader:
    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((2, stop - start), np.float32)
        lo, hi = max(start, 0), min(stop, self.audio.shape[-1])
        if hi > lo:
            out[:, lo - start : hi - start] = self.audio[:, lo:hi]
        return out


def _per_chunk(separator: MdxSeparator, audio: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Wall and process CPU seconds per chunk, and the stems."""
    run = separator.prepare(audio.shape[-1], ["instrumental", "vocals"])
    started, cpu = time.perf_counter(), time.process_time()
    stems = np.concatenate(list(run.blocks(_Reader(audio), lambda: None)), axis=-1)
    return (time.perf_counter() - started) / run.chunks, (time.process_time() - cpu) / run.chunks, stems


def _stft_times(audio: np.ndarray) -> dict[str, float]:
    import torch

    from musicsep.model.mdx.stft import istft, stft

    chunk = np.resize(audio, (2, INST_HQ_4.chunk))
    p = INST_HQ_4
    times = {}
    started = time.perf_counter()
    istft(stft(chunk, p.n_fft, p.hop), p.n_fft, p.hop, p.chunk)
    times["numpy"] = time.perf_counter() - started
    window = torch.hann_window(p.n_fft, periodic=True)
    for threads in (2, 1):
        torch.set_num_threads(threads)
        started = time.perf_counter()
        spec = torch.stft(torch.from_numpy(chunk), p.n_fft, p.hop, window=window, return_complex=True)
        torch.istft(spec, p.n_fft, p.hop, window=window, length=p.chunk)
        times[f"torch-{threads}t"] = time.perf_counter() - started
    return times


def _htdemucs_per_minute() -> float:
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs

    model = HTDemucs(["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()
    x = torch.randn(1, 2, 343_980)
    started = time.perf_counter()
    with torch.inference_mode():
        model(x)
    segment_s = time.perf_counter() - started
    return segment_s * 60 / (7.8 * 0.75)  # a segment every 0.75 x 7.8 s (overlap 0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["musicsep", "t2", "default"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/musicsep-mdx-bench"))
    parser.add_argument("--stft", action="store_true")
    parser.add_argument("--htdemucs", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} (shared machine: other jobs may run)")
    path = args.work / INST_HQ_4_FILE
    if not path.exists():
        started = time.perf_counter()
        build_mdx_onnx(path, INST_HQ_4, size="full")
        print(
            f"built {path.name}: {path.stat().st_size / 1e6:.1f} MB, {parameter_count(INST_HQ_4) / 1e6:.2f} M weights "
            f"in {time.perf_counter() - started:.1f} s"
        )
    audio = (0.3 * np.random.default_rng(0).standard_normal((2, CLIP_FRAMES))).astype(np.float32)
    separators = {variant: _separator(path, variant) for variant in args.variants}
    per_minute = 60 * SAMPLERATE / int(0.75 * INST_HQ_4.chunk)
    times: dict[str, list[float]] = {variant: [] for variant in args.variants}
    cpu: dict[str, list[float]] = {variant: [] for variant in args.variants}
    stems: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        for variant, separator in separators.items():
            wall, cpu_s, stems[variant] = _per_chunk(separator, audio)
            times[variant].append(wall)
            cpu[variant].append(cpu_s)
            print(
                f"  repeat {repeat + 1} {variant}: {wall:.2f} s/chunk, {cpu_s:.2f} CPU s/chunk, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    baseline = "default" if "default" in times else args.variants[0]
    base, base_cpu = statistics.median(times[baseline]), statistics.median(cpu[baseline])
    for variant, values in times.items():
        chunk_s, cpu_s = statistics.median(values), statistics.median(cpu[variant])
        error = np.sum((stems[variant].astype(np.float64) - stems[baseline]) ** 2)
        sdr = 10 * np.log10(np.sum(stems[baseline].astype(np.float64) ** 2) / error) if error else float("inf")
        print(
            f"{variant:9s} {chunk_s:6.2f} s/chunk  {chunk_s * per_minute:6.1f} s per minute of audio  "
            f"ratio to {baseline}: {chunk_s / base:.2f}; CPU {cpu_s:.2f} s/chunk (ratio {cpu_s / base_cpu:.2f}); "
            f"SDR vs {baseline} {sdr:.1f} dB"
        )
    if args.stft:
        for name, seconds in _stft_times(audio).items():
            print(f"stft+istft of one chunk, {name}: {seconds * 1000:.0f} ms")
    if args.htdemucs:
        demucs_minute = _htdemucs_per_minute()
        mdx_minute = statistics.median(times[args.variants[0]]) * per_minute
        print(
            f"htdemucs (random init, 1 segment) {demucs_minute:.1f} s per minute of audio; "
            f"{args.variants[0]} / htdemucs: {mdx_minute / demucs_minute:.2f}"
        )


if __name__ == "__main__":
    main()
