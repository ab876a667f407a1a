"""Which runtime runs a RoFormer's network on the CPU: torch, or OpenVINO for the part between the STFTs.

`runtime` is Settings.runtime: `torch` (and `onnxruntime`, which has no path here) keep the
package's module; `openvino` runs the core (BS-RoFormer's and Mel-Band RoFormer's) in OpenVINO
f32 (openvino_core.py), compiled for the separator's chunk length; `auto` reads the choice saved
for this checkpoint, config, runtime versions and CPU, or converts the core and measures both
runtimes once on a short spectrogram (model/runtime/choice.py). CUDA, a precision other than
fp32 and a missing openvino wheel all mean torch.

The calibration runs CALIBRATION_FRAMES frames, not a whole chunk (801 frames for ViperX 1297):
a chunk costs torch minutes of CPU time, and `calibrate` times each runtime twice. The short
input ranks the runtimes as the chunk does: OpenVINO / torch CPU seconds 0.68 at 64 frames and
0.57 at 801 for ViperX 1297, 0.40 and 0.50 for Kim's Mel-Band (AMD EPYC; docs/performance.md,
"CPU runtimes").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from loguru import logger

from musicsep.model.mdx.session import cpu_threads
from musicsep.model.msst.stream import MsstSeparator
from musicsep.model.roformer.openvino_core import OpenVinoRoformer, RoformerCore, Stft, convert, features, supports
from musicsep.model.runtime.choice import (
    Choice,
    cached_choice,
    calibrate,
    default_cache_dir,
    file_digest,
    model_key,
    runtime_available,
)

#: Spectrogram frames of the calibration input (an 8 s chunk has 801: short keeps it cheap).
CALIBRATION_FRAMES = 64


def apply_runtime(
    separator: MsstSeparator, checkpoint: Path, config: Path, *, runtime: str, cache_dir: Path | None
) -> None:
    """Switch `separator`'s network to the runtime `runtime` resolves to (it stays torch unless OpenVINO runs it)."""
    module = separator.model
    usable = separator.device.type == "cpu" and separator.precision == "fp32" and supports(module)
    if runtime not in ("openvino", "auto") or not usable or not runtime_available("openvino"):
        if runtime == "openvino":
            logger.warning(
                "musicsep runtime: {} runs in torch (OpenVINO: the RoFormers on the CPU in fp32)", separator.name
            )
        return
    folder = cache_dir or default_cache_dir()
    extra = f"roformer core {file_digest(config)}"
    key = model_key(checkpoint, ["torch", "openvino"], extra)
    choice = cached_choice(folder, key, ("torch", "openvino")) if runtime == "auto" else None
    if choice is not None and choice.runtime == "torch":
        separator.runtime_choice = choice
        return
    ir = folder / "openvino" / key / "ir" / "core.xml"
    if not ir.exists():
        logger.info("musicsep runtime: converting {}'s network for OpenVINO (once per checkpoint)", separator.name)
        convert(module, ir)
    stft = Stft.of(module)
    compiled_dir = ir.parent.parent / "compiled"
    if runtime == "auto" and choice is None:
        choice = _calibrate(module, stft, ir, compiled_dir, key=key, folder=folder)
        if choice.runtime == "torch":
            separator.runtime_choice = choice
            return
    # The torch weights go before OpenVINO compiles its own: never both in memory (peak RSS).
    separator.model = None
    del module
    compiled = OpenVinoRoformer(
        stft, ir, threads=cpu_threads(), cache_dir=compiled_dir, frames=stft.frames(separator.chunk_size)
    )
    separator.model = compiled
    separator.runtime = "openvino"
    separator.runtime_choice = choice


def _calibrate(module, stft: Stft, ir: Path, compiled_dir: Path, *, key: str, folder: Path) -> Choice:
    """`auto`'s one measurement: torch's core against a static CALIBRATION_FRAMES compile (dropped after)."""
    probe = OpenVinoRoformer(stft, ir, threads=cpu_threads(), cache_dir=compiled_dir, frames=CALIBRATION_FRAMES)
    x = calibration_features(stft)
    core = RoformerCore(module).eval()

    def in_torch() -> np.ndarray:
        with torch.inference_mode():
            return core(x).numpy()

    return calibrate(
        {"torch": in_torch, "openvino": lambda: probe.masks(x).numpy()}, reference="torch", key=key, folder=folder
    )


def calibration_features(stft: Stft) -> torch.Tensor:
    """The core's input for a fixed noise clip of CALIBRATION_FRAMES frames (the same in every process)."""
    samples = stft.kwargs["hop_length"] * (CALIBRATION_FRAMES - 1)
    rng = np.random.default_rng(17)
    audio = torch.from_numpy((0.3 * rng.standard_normal((1, stft.channels, samples))).astype(np.float32))
    with torch.inference_mode():
        return features(stft, audio)[1]
