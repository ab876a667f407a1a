"""Compile the numba functions the analysis uses once, at install time, not in the first job.

librosa's numba functions compile on a process's first use and are cached on disk; on a fresh
install that first use is the first analysed track, and it pays the compilation: 56 s (48 CPU
s) on a 2-core AVX2 EPYC for a 6 s clip whose next analysis takes 0.06 s. `make setup` and the
Docker images run this module once so that a new server's first job does not wait for it:

    python -m musicsep.model.analysis.precompile

It analyses a few seconds of a pulsed tone: every path a track takes compiles (analyze_blocks
warms the beat tracker a track may not reach), under numba_cache's inter-process lock, into the
cache numba uses (librosa's `__pycache__`, or `NUMBA_CACHE_DIR`).
"""

from __future__ import annotations

import time

import numpy as np

from musicsep.model.analysis.analyze import analyze_blocks

SAMPLERATE = 44100
SECONDS = 6.0


def precompile() -> float:
    """Analyse a pulsed tone; returns the seconds it took (the compilation, on a fresh install)."""
    t = np.arange(int(SAMPLERATE * SECONDS)) / SAMPLERATE
    tone = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    started = time.monotonic()
    analyze_blocks([np.stack([tone, tone])], SAMPLERATE)
    return time.monotonic() - started


if __name__ == "__main__":
    print(f"musicsep: the analysis' numba functions are compiled ({precompile():.1f} s)")
