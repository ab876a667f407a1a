"""Opt-in `torch.compile` of a loaded separator's models (`musicsep separate --compile`).

Why opt-in and never the CPU default: on the 2-core development machine compiling the full-size
HTDemucs took 773 s for a forward pass only ~25% faster, so it pays only for very long
or many tracks in one process. Inductor's FX-graph cache (on by default in torch >= 2.4; folder
from TORCHINDUCTOR_CACHE_DIR) lets a later process skip most of that cost, and the time each
start really spent is returned so the caller can print it.
"""

from __future__ import annotations

import time

import numpy as np


def compile_separator(separator, segment: float | None = None, batch_size: int = 1) -> float:
    """Compile every member model of `separator` and warm it up on one silent segment of the shape
    the engine will feed it, so the compile cost is paid (and measured) here, not mid-track.
    Returns the seconds spent. Arithmetic is unchanged up to float rounding (Inductor may fuse
    and reorder operations: exact mode's 1e-4 equivalence is not promised under --compile)."""
    import torch

    started = time.monotonic()
    runtimes = getattr(separator, "runtimes", {})  # members OpenVINO runs have nothing to compile
    for model in separator.members()[0]:
        if id(model) in separator.compiled or id(model) in runtimes:
            continue
        compiled = torch.compile(model, dynamic=False)
        separator.compiled[id(model)] = compiled
        frames = _chunk_frames(model, segment)
        silent = np.zeros((batch_size, separator.audio_channels, frames), dtype=np.float32)
        separator.forward(model, silent)
    return time.monotonic() - started


def _chunk_frames(model, segment: float | None) -> int:
    """The padded chunk length the engine's lanes use for a full segment (see _Lane)."""
    from demucs.htdemucs import HTDemucs

    seconds = segment if segment is not None else float(model.segment)
    frames = int(model.samplerate * seconds)
    if isinstance(model, HTDemucs) and segment is not None:
        return frames
    return model.valid_length(frames) if hasattr(model, "valid_length") else frames
