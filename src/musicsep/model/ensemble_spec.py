"""Blockwise max_spec / min_spec that equals the whole-track STFT → pick → iSTFT.

Geometry (fixed, so results do not depend on the members' chunking): `SPEC_N_FFT` = 2048,
`SPEC_HOP` = 512, periodic Hann, frames centred on `t * hop` (`center=True`), zeros beyond the
track, iSTFT = overlap-add of the windowed inverse FFTs divided by the summed squared window, as
`torch.stft` / `torch.istft` do it. Frame `t` covers samples `[t*hop - n/2, t*hop + n/2)`; the pick
is frame-local, so output sample `s` needs exactly the frames covering `s`, and they need the
members' samples up to `n/2` either side. A block `[E, b)` is emitted once every member has
produced the samples its last frame covers: a look-ahead of at most `n/2 + hop` samples, and the
buffer holds only that context, whatever the track's length.

Hand-written rather than `torch.stft` over each block: the frames must start at fixed track
positions across blocks, and the overlap-add must cover only the frames that touch the block;
numpy's `rfft` over a strided view does both with no padding arithmetic to undo.
"""

from __future__ import annotations

import numpy as np

SPEC_N_FFT = 2048
SPEC_HOP = 512


def hann(n: int) -> np.ndarray:
    """The periodic Hann window (`torch.hann_window(n)`)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


class SpecCombiner:
    """Fed aligned member estimates `(M, S, C, n)` in track order; returns finished `(S, C, k)` output."""

    def __init__(self, frames: int, method: str, n_fft: int = SPEC_N_FFT, hop: int = SPEC_HOP) -> None:
        assert n_fft % hop == 0 and n_fft % 2 == 0
        self.frames = frames
        self._pick_max = method == "max_spec"
        self._n, self._hop = n_fft, hop
        self._window = hann(n_fft)
        self._buffer: np.ndarray | None = None  # members' samples [start, have)
        self._start = 0
        self._have = 0
        self._emitted = 0

    def push(self, estimates: np.ndarray) -> np.ndarray:
        block = estimates.astype(np.float64)
        self._buffer = block if self._buffer is None else np.concatenate([self._buffer, block], axis=-1)
        self._have += block.shape[-1]
        half, hop = self._n // 2, self._hop
        if self._have >= self.frames:
            stop = self.frames
        else:
            last_frame = (self._have - half) // hop  # the last frame whose samples are all here
            stop = min(self.frames, (last_frame + 1) * hop - half)
        if stop <= self._emitted:
            return np.zeros((*block.shape[1:-1], 0), np.float32)
        out = self._synthesise(self._emitted, stop)
        self._emitted = stop
        keep_from = max(0, self._first_frame(stop) * hop - half)  # context the next block needs
        if keep_from > self._start:
            self._buffer = self._buffer[..., keep_from - self._start :]
            self._start = keep_from
        return out

    def _first_frame(self, sample: int) -> int:
        """The first frame that covers `sample` (frames start at 0)."""
        return max(0, (sample - self._n // 2) // self._hop + 1)

    def _segment(self, start: int, stop: int) -> np.ndarray:
        """Buffered samples `[start, stop)`, zeros outside the track."""
        assert self._buffer is not None
        out = np.zeros((*self._buffer.shape[:-1], stop - start))
        lo, hi = max(start, 0), min(stop, self.frames)
        out[..., lo - start : hi - start] = self._buffer[..., lo - self._start : hi - self._start]
        return out

    def _synthesise(self, first: int, stop: int) -> np.ndarray:
        n, hop, half = self._n, self._hop, self._n // 2
        t_lo = self._first_frame(first)
        t_hi = min(self.frames // hop, (stop - 1 + half) // hop)
        origin = t_lo * hop - half
        segment = self._segment(origin, t_hi * hop + half)  # (M, S, C, span)
        frames = np.lib.stride_tricks.sliding_window_view(segment, n, axis=-1)[..., ::hop, :]
        spectra = np.fft.rfft(frames * self._window, axis=-1)  # (M, S, C, F, bins)
        magnitude = np.abs(spectra)
        index = magnitude.argmax(axis=0) if self._pick_max else magnitude.argmin(axis=0)
        picked = np.take_along_axis(spectra, index[None], axis=0)[0]
        waves = np.fft.irfft(picked, n=n, axis=-1) * self._window  # (S, C, F, n)
        count = waves.shape[-2]
        ratio = n // hop
        pieces = waves.reshape(*waves.shape[:-1], ratio, hop)
        summed = np.zeros((*waves.shape[:-2], count + ratio - 1, hop))
        envelope = np.zeros((count + ratio - 1, hop))
        squared = (self._window**2).reshape(ratio, hop)
        for k in range(ratio):
            summed[..., k : k + count, :] += pieces[..., :, k, :]
            envelope[k : k + count] += squared[k]
        flat = summed.reshape(*summed.shape[:-2], -1)
        weight = envelope.reshape(-1)
        part = slice(first - origin, stop - origin)
        return (flat[..., part] / weight[part]).astype(np.float32)
