"""The STFT pair MDX-Net models were trained with: `torch.stft`/`torch.istft`'s arithmetic
(center=True with reflected edges, a periodic Hann window, istft divided by the summed squared
windows), computed with numpy's single-threaded FFT.

Why not torch itself: its OpenMP threads wait on each other at every call, and on a CPU shared
with other jobs one MDX chunk's STFT took 30 ms with two threads against 3 ms with one
(bench/mdx_speed.py); torch's thread count is process-wide, so the engine cannot lower it for
itself without slowing a Demucs job running beside it. scipy's ShortTimeFFT pads and places its
frames differently (no center=True reflection), so the few lines below are written out.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (torch.hann_window(periodic=True)), float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def stft(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """`(..., n)` float32 -> `(..., n_fft // 2 + 1, n // hop + 1)` complex64."""
    half = n_fft // 2
    padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(half, half)], mode="reflect")
    frames = sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    return np.fft.rfft(frames * hann(n_fft), axis=-1).swapaxes(-1, -2)


@lru_cache(maxsize=8)
def _envelope(n_fft: int, hop: int, frames: int) -> np.ndarray:
    """Summed squared windows at every sample of the overlap-added frames."""
    squared = hann(n_fft).astype(np.float64) ** 2
    total = np.zeros(n_fft + hop * (frames - 1))
    for index in range(frames):
        total[index * hop : index * hop + n_fft] += squared
    return total.astype(np.float32)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """`(..., n_fft // 2 + 1, frames)` complex -> `(..., length)` float32 (the inverse of `stft`)."""
    frames = spec.shape[-1]
    pieces = np.fft.irfft(spec.swapaxes(-1, -2), n=n_fft, axis=-1).astype(np.float32) * hann(n_fft)
    # Overlap-add in hop-long slabs: frame f's slab j lands on output slab f + j, so the sum is
    # one vectorised add per slab of a frame (n_fft / hop of them) instead of one per frame
    # (a Python loop over 256 frames was a third of a chunk's STFT pair).
    slabs = -(-n_fft // hop)
    pieces = np.pad(pieces, [(0, 0)] * (pieces.ndim - 1) + [(0, slabs * hop - n_fft)])
    pieces = pieces.reshape(*pieces.shape[:-1], slabs, hop)
    out = np.zeros((*spec.shape[:-2], frames + slabs - 1, hop), np.float32)
    for slab in range(slabs):
        out[..., slab : slab + frames, :] += pieces[..., slab, :]
    out = out.reshape(*out.shape[:-2], -1)
    half = n_fft // 2
    envelope = _envelope(n_fft, hop, frames)[half : half + length]
    return out[..., half : half + length] / envelope
