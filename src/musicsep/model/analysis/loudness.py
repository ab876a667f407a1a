"""BS.1770 integrated loudness and sample peak, block by block in bounded memory.

pyloudnorm's `Meter.integrated_loudness` wants the whole signal at once: 60 minutes of stereo at
44.1 kHz is 1.3 GB as float64. BS.1770's gating, though, only looks at the mean square of
K-weighted 400 ms blocks overlapping by 75 %, i.e. at sums over 100 ms steps. So this meter
K-weights each decoded block with pyloudnorm's own filter coefficients (filter state carried from
block to block), keeps one mean square per channel per 100 ms, and at the end hands pyloudnorm that
bounded representation: a 10 Hz signal whose every sample is the root mean square of one 100 ms
step, measured with weighting disabled. pyloudnorm then sees exactly the block energies it would
have computed itself (its block bounds at 10 Hz are exact integers), and does the gating. A
60-minute track costs 36,000 numbers per channel.
"""

from __future__ import annotations

import math

import numpy as np

_LFE_INDEX = 3
_SURROUND_GAIN = 1.41
_STEPS_PER_SECOND = 10  # BS.1770: 400 ms blocks with 75 % overlap -> 100 ms steps


def _channel_weights(channels: int) -> np.ndarray:
    """BS.1770 weights: pyloudnorm's for up to five channels (L, R, C, Ls, Rs); for more, in
    FFmpeg/SMPTE order (L, R, C, LFE, Ls, Rs, ...), fronts 1.0, LFE 0, the rest 1.41."""
    if channels <= 5:
        return np.array([1.0, 1.0, 1.0, _SURROUND_GAIN, _SURROUND_GAIN][:channels])
    weights = np.full(channels, _SURROUND_GAIN)
    weights[:3] = 1.0
    weights[_LFE_INDEX] = 0.0
    return weights


class LoudnessMeter:
    """Streams (channels, n) blocks at the track's own rate; `result()` gives (lufs, peak, reason)."""

    def __init__(self, samplerate: int, channels: int) -> None:
        import pyloudnorm

        self.samplerate = int(samplerate)
        self.channels = int(channels)
        # pyloudnorm's K-weighting (high shelf, then high pass) designed for this rate; `_filters`
        # is the meter's own table, read rather than re-designed so both stay the same filter.
        # Both biquads run in one float32 second-order-sections pass: 4-6x faster than two float64
        # lfilter passes, and the loudness differs by less than 0.001 LU.
        from scipy.signal import tf2sos

        stages = list(pyloudnorm.Meter(self.samplerate)._filters.values())
        self._sos = np.concatenate([tf2sos(s.b, s.a) for s in stages]).astype(np.float32)
        self._power_gain = float(np.prod([s.passband_gain for s in stages])) ** 2
        self._state = np.zeros((len(stages), self.channels, 2), dtype=np.float32)
        self._frames = 0
        self._next_step = 1  # index of the next 100 ms boundary to close
        self._partial = np.zeros(self.channels)
        self._steps: list[np.ndarray] = []
        self._peak = 0.0

    def _boundary(self, step: int) -> int:
        # Same sample bounds as pyloudnorm: int(0.1 * step * rate), kept in integers.
        return (step * self.samplerate) // _STEPS_PER_SECOND

    def add(self, block: np.ndarray) -> None:
        from scipy.signal import sosfilt

        if block.shape[-1] == 0:
            return
        self._peak = max(self._peak, float(block.max()), -float(block.min()))
        weighted, self._state = sosfilt(self._sos, block.astype(np.float32, copy=False), axis=-1, zi=self._state)
        squares = np.square(weighted)
        start, stop = self._frames, self._frames + block.shape[-1]
        cuts = []
        while self._boundary(self._next_step) <= stop:
            cuts.append(self._boundary(self._next_step) - start)
            self._next_step += 1
        pieces = np.split(squares, cuts, axis=-1)
        for piece in pieces[:-1]:
            self._steps.append(self._partial + piece.sum(axis=-1, dtype=np.float64))
            self._partial = np.zeros(self.channels)
        self._partial = self._partial + pieces[-1].sum(axis=-1, dtype=np.float64)
        self._frames = stop

    def result(self) -> tuple[float | None, float | None, str | None]:
        """Integrated loudness (LUFS), sample peak (dBFS) and why either is missing."""
        import pyloudnorm

        peak = 20.0 * math.log10(self._peak) if self._peak > 0.0 else None
        # pyloudnorm counts round((T - 0.4) / 0.1) + 1 blocks of 4 steps: a last step shorter than
        # 100 ms counts when it is at least half full.
        n_steps = int(np.round(self._frames * _STEPS_PER_SECOND / self.samplerate))
        steps = list(self._steps)
        if n_steps > len(steps):
            steps.append(self._partial)
        steps = steps[:n_steps]
        if peak is None:
            return None, None, "digital silence: every sample is zero"
        if len(steps) < 4:
            return None, peak, "shorter than one 400 ms BS.1770 gating block"
        energy = np.stack(steps) * self._power_gain / (self.samplerate / _STEPS_PER_SECOND)
        # BS.1770 gates on the weighted channel sum of each block's energy, and averages it
        # linearly: handing pyloudnorm that sum as one channel gives the same figure, with half
        # of its per-block Python loop for stereo; it also covers layouts pyloudnorm refuses
        # (more than five channels).
        energy = (energy * _channel_weights(self.channels)).sum(axis=1, keepdims=True)
        meter = pyloudnorm.Meter(_STEPS_PER_SECOND, filter_class="custom")
        lufs = float(meter.integrated_loudness(np.sqrt(energy)))
        if not math.isfinite(lufs):
            return None, peak, "too quiet: no 400 ms block above the -70 LUFS absolute gate"
        return lufs, peak, None
