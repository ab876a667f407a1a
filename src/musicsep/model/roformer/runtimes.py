"""Which runtime runs a RoFormer's network on the CPU: torch, or OpenVINO for the part between the STFTs.

`runtime` is Settings.runtime: `torch` (and `onnxruntime`, which has no path here) keep the
package's module; `openvino` runs BS-RoFormer's core in OpenVINO f32 (openvino_core.py); `auto`
reads the choice saved for this checkpoint, config, runtime versions and CPU, or converts the core
and measures both runtimes once on a short spectrogram (model/runtime/choice.py). Mel-Band
RoFormer, CUDA, a precision other than fp32 and a missing openvino wheel all mean torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from loguru import logger

from musicsep.model.mdx.session import cpu_threads
from musicsep.model.msst.stream import MsstSeparator
from musicsep.model.roformer.openvino_core import OpenVinoRoformer, RoformerCore, convert, features, supports
from musicsep.model.runtime.choice import (
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
                "musicsep runtime: {} runs in torch (OpenVINO: BS-RoFormer on the CPU in fp32)", separator.name
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
    compiled = OpenVinoRoformer(module, ir, threads=cpu_threads(), cache_dir=ir.parent.parent / "compiled")
    if runtime == "auto" and choice is None:
        x = calibration_features(module)
        core = RoformerCore(module).eval()

        def in_torch() -> np.ndarray:
            with torch.inference_mode():
                return core(x).numpy()

        choice = calibrate(
            {"torch": in_torch, "openvino": lambda: compiled.masks(x).numpy()},
            reference="torch",
            key=key,
            folder=folder,
        )
        if choice.runtime == "torch":
            separator.runtime_choice = choice
            return
    separator.model = compiled
    separator.runtime = "openvino"
    separator.runtime_choice = choice


def calibration_features(module) -> torch.Tensor:
    """The core's input for a fixed noise clip of CALIBRATION_FRAMES frames (the same in every process)."""
    samples = module.stft_kwargs["hop_length"] * (CALIBRATION_FRAMES - 1)
    rng = np.random.default_rng(17)
    audio = torch.from_numpy((0.3 * rng.standard_normal((1, module.audio_channels, samples))).astype(np.float32))
    with torch.inference_mode():
        return features(module, audio)[1]
