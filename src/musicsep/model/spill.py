"""The decoded track on disk, read back in windows.

Demucs normalises by the whole track's mean and std and needs context around every segment, so
the decoded (resampled) track is written once to a float32 file while its statistics accumulate,
then read back window by window with ordinary file reads. File reads keep the samples in the page
cache rather than in this process's memory, which is what keeps RSS flat over track length
(an mmap would count every touched page against RSS).

A full disk (or quota) while the track is written is `StorageFull`, as it is for the stems
(model/audio/encode.py): the CLI exits 5 and the server fails the job `storage_full`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from musicsep.model.errors import storage_full_is_typed


class ArrayReader:
    """A FrameReader over an in-memory `(channels, frames)` array (library use and tests)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.channels, self.frames = self.audio.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((self.channels, stop - start), np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            out[:, lo - start : hi - start] = self.audio[:, lo:hi]
        return out


class TrackSpill:
    """Write-once, read-many float32 track file with running mean/std of the mono mix."""

    def __init__(self, path: Path, channels: int) -> None:
        self.path = path
        self.channels = channels
        self.frames = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._file = open(path, "w+b")
        self._mean = 0.0
        self._std = 1.0

    def write(self, block: np.ndarray) -> None:
        mono = block.mean(axis=0, dtype=np.float64)
        self._sum += float(mono.sum())
        self._sumsq += float(np.dot(mono, mono))
        with storage_full_is_typed():
            self._file.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
        self.frames += block.shape[1]

    def fill(self, blocks: Iterable[np.ndarray], on_block=None) -> None:
        for block in blocks:
            self.write(block)
            if on_block is not None:
                on_block(self.frames)
        with storage_full_is_typed():
            self._file.flush()

    def stats(self) -> tuple[float, float]:
        """Mean and (unbiased, like torch.std) standard deviation of the mono mix, + 1e-8 like Demucs."""
        n = max(self.frames, 1)
        mean = self._sum / n
        var = max(0.0, (self._sumsq - n * mean * mean) / max(n - 1, 1))
        return mean, var**0.5 + 1e-8

    def normalize(self, mean: float, std: float) -> None:
        """Make reads return (x - mean) / std, as Demucs feeds its models."""
        self._mean, self._std = mean, std

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((self.channels, stop - start), np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            width = self.channels * 4
            raw = os.pread(self._file.fileno(), (hi - lo) * width, lo * width)
            window = np.frombuffer(raw, np.float32).reshape(hi - lo, self.channels).T
            out[:, lo - start : hi - start] = (window - np.float32(self._mean)) / np.float32(self._std)
        return out

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        """Frames without normalisation (the original mix, for two-stem 'minus')."""
        width = self.channels * 4
        raw = os.pread(self._file.fileno(), (stop - start) * width, start * width)
        return np.frombuffer(raw, np.float32).reshape(stop - start, self.channels).T.copy()

    def close(self) -> None:
        """Remove the file. Closing flushes what the buffer still holds, which fails again on a
        full disk; that error is dropped (the file is deleted unread) so that it does not hide
        the StorageFull being raised (the descriptor is closed either way)."""
        try:
            self._file.close()
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)
