"""Would int8 make HTDemucs's fast mode (issue 17, must 2: >= 3x the Demucs CLI, SDR >= 40 dB)?

The fast mode today is OpenVINO with a bf16 inference precision, and only where the CPU runs bf16
natively; an AVX2-only CPU has no fast mode at all. int8 is the one precision both kinds of CPU
run faster than f32 (AVX2 through VPMADDUBSW, AVX-512 VNNI through VPDPBUSD), so this probe asks
what it buys on HTDemucs's network before any of it goes into the product:

    python bench/openvino_int8_probe.py                # full-size htdemucs, random init
    python bench/openvino_int8_probe.py --calibration 16 --repeats 5
    python bench/openvino_int8_probe.py --scope convolutions    # int8 convolutions, float matmuls

It converts the network as the product does (model/demucs_runtime/openvino_core.py), quantises it
with NNCF's post-training quantisation (`nncf.quantize`, weights and activations int8, the
transformer preset that keeps softmax and layer norms in float) on `--calibration` segments of a
synthetic song, and prints per variant the CPU seconds per 7.8 s segment and the ratio against
OpenVINO f32 measured in the same run, and the SDR of the separated stems (mask and inverse
spectrogram in torch, as the product runs them) against torch fp32 on segments that were not used
for calibration. NNCF is not a dependency of musicsep: `pip install nncf` first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from _cpu import cpu_model
from _fixtures import write_track
from musicsep.model.demucs_runtime.openvino_core import (
    OpenVinoHTDemucs,
    bf16_capable,
    convert,
    core_inputs,
    training_length,
)


def _cpu_s() -> float:
    usage = os.times()
    return usage.user + usage.system


def _sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    noise = float(((reference - estimate) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((reference**2).sum()) / noise)


def _segments(model, count: int, seed: int) -> list[torch.Tensor]:
    """`count` training-length stereo segments of a synthetic song (each (1, 2, L))."""
    length = training_length(model)
    with tempfile.TemporaryDirectory() as folder:
        path = write_track(Path(folder) / "song.wav", seconds=count * length / model.samplerate + 1, seed=seed)
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
    audio = torch.from_numpy(audio.T.copy())
    return [audio[None, :, i * length : (i + 1) * length].contiguous() for i in range(count)]


def _quantised(model, ir: Path, calibration: list[torch.Tensor], out: Path, scope: str) -> Path:
    import nncf
    import openvino

    def inputs(segment: torch.Tensor) -> list[np.ndarray]:
        _, mag, padded = core_inputs(model, segment)
        return [mag.numpy(), padded.numpy()]

    started = time.monotonic()
    quantised = nncf.quantize(
        openvino.Core().read_model(str(ir)),
        nncf.Dataset(calibration, inputs),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(types=["MatMul"]) if scope == "convolutions" else None,
    )
    openvino.save_model(quantised, str(out), compress_to_fp16=False)
    print(f"quantised in {time.monotonic() - started:.1f} s on {len(calibration)} segments", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=8, help="segments to calibrate the int8 ranges on")
    parser.add_argument("--test-segments", type=int, default=3, help="other segments, for speed and SDR")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "musicsep-int8-probe")
    parser.add_argument("--scope", choices=["all", "convolutions"], default="all", help="what is quantised")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    torch.manual_seed(0)
    from demucs.htdemucs import HTDemucs

    model = HTDemucs(["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()
    ir = args.work / "f32" / "core.xml"
    if not ir.exists():
        convert(model, ir)
    int8 = args.work / f"int8-{args.scope}" / "core.xml"
    if not int8.exists():
        int8.parent.mkdir(parents=True, exist_ok=True)
        _quantised(model, ir, _segments(model, args.calibration, seed=1), int8, args.scope)
    tests = _segments(model, args.test_segments, seed=2)
    with torch.no_grad():
        exact = [model(segment) for segment in tests]

    variants = {"openvino f32": (ir, "fp32"), f"openvino int8 {args.scope} (+f32)": (int8, "fp32")}
    if bf16_capable():
        variants |= {"openvino bf16": (ir, "bf16"), f"openvino int8 {args.scope} (+bf16)": (int8, "bf16")}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    sdr: dict[str, float] = {}
    runners = {}
    for name, (path, precision) in variants.items():
        runners[name] = OpenVinoHTDemucs(model, path, precision=precision, threads=cores, streams=1, cache_dir=None)
        outputs = [runners[name](segment) for segment in tests]  # also the warm-up
        sdr[name] = min(_sdr(reference, output) for reference, output in zip(exact, outputs, strict=True))
    for _ in range(args.repeats):  # alternated, so that the machine's load falls on every variant alike
        for name, runner in runners.items():
            started = _cpu_s()
            for segment in tests:
                runner(segment)
            cpu[name].append((_cpu_s() - started) / len(tests))

    print(cpu_model())
    base = statistics.median(cpu["openvino f32"])
    for name in variants:
        median = statistics.median(cpu[name])
        print(
            f"{name:<36} {median:6.2f} CPU s/segment  {base / median:5.2f}x openvino f32"
            f"  worst SDR vs torch fp32 {sdr[name]:6.1f} dB"
        )


if __name__ == "__main__":
    main()
