"""Waveform peaks of a stem, so that a page can draw it without downloading the audio.

One value per 1/`rate` s: the largest absolute sample over every channel in that window, on the
file's own full scale (1.0). No normalisation: every stem of a job is on the same absolute
scale, so a quiet bass line looks quiet beside the drums. Fed block by block, so memory grows by
`rate` floats per second of audio, never by the samples.
"""

from __future__ import annotations

import numpy as np

#: Windows per second: 50 (20 ms) is finer than a page's pixel at any usual zoom of a song.
PEAKS_RATE = 50
_DECIMALS = 4


class PeakMeter:
    def __init__(self, samplerate: int, rate: int = PEAKS_RATE) -> None:
        if samplerate <= 0 or rate <= 0:
            raise ValueError("samplerate and rate must be positive")
        self.samplerate = samplerate
        self.rate = rate
        self.frames = 0
        self._peaks: list[float] = []

    def add(self, block: np.ndarray) -> None:
        """Take `(channels, n)` samples, the continuation of those before."""
        frames = block.shape[1]
        if frames == 0:
            return
        level = np.abs(block).max(axis=0)
        windows = (np.arange(self.frames, self.frames + frames, dtype=np.int64) * self.rate) // self.samplerate
        starts = np.flatnonzero(np.diff(windows, prepend=windows[0] - 1))
        values = np.maximum.reduceat(level, starts).tolist()
        if self._peaks and int(windows[0]) == len(self._peaks) - 1:  # the window the last block left open
            self._peaks[-1] = max(self._peaks[-1], values.pop(0))
        self._peaks.extend(values)
        self.frames += frames

    def result(self) -> dict[str, object]:
        """`{"rate", "samplerate", "duration_s", "peaks"}`; `len(peaks) == ceil(duration_s * rate)`."""
        return {
            "rate": self.rate,
            "samplerate": self.samplerate,
            "duration_s": round(self.frames / self.samplerate, 6),
            "peaks": [round(float(value), _DECIMALS) for value in self._peaks],
        }
