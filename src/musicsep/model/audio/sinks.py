"""Encoder back-ends behind `StemWriter`: each takes float32 `(channels, n)` blocks as they come.

Lossless formats go through soundfile (libsndfile). Their integer samples are made exactly as
Demucs 4.1's `encode_wav` makes them (clamp to [-1, 1], scale by 2**15 - 1 or 2**23 - 1,
truncate), so a musicsep stem file holds the same numbers as the Demucs CLI's.

Ogg Opus goes through PyAV (FFmpeg's libopus and Ogg muxer) rather than libsndfile: the muxer
records the pre-skip and the end granule, so a decoded stem has exactly the input's length, the
bitrate is an exact kbps setting (libsndfile only offers a 0-1 "compression level"), and Opus
runs at 48 kHz only among the usual rates, which PyAV's encoder resamples into on the way.
MP3 has its own module (mp3.py).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile as sf

_OPUS_RATE = 48000
#: libopus refuses more than 256 kbps per channel; higher requests are capped there.
_OPUS_MAX_KBPS_PER_CHANNEL = 256

#: Below this much free space a failed libsndfile write or close is taken for a full disk.
_FULL_BELOW_BYTES = 1 << 20


class Sink(Protocol):
    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


def pcm16(block: np.ndarray) -> np.ndarray:
    """Demucs's `i16_pcm`: clamp, scale by 32767, truncate toward zero."""
    return (np.clip(block, -1.0, 1.0) * np.float32(2**15 - 1)).astype(np.int16)


def pcm24(block: np.ndarray) -> np.ndarray:
    """Demucs's 24-bit samples, carried in the top bits of an int32 as libsndfile expects."""
    return (np.clip(block, -1.0, 1.0) * np.float32(2**23 - 1)).astype(np.int32) << 8


def pcm_float(block: np.ndarray) -> np.ndarray:
    """Demucs 4.1 clamps float wav output to [-1, 1] as well."""
    return np.clip(block, -1.0, 1.0)


def _raise_if_no_room(folder: Path, wanted: int, failure: sf.LibsndfileError) -> None:
    """libsndfile reports a failed write(2) as a bare "System error" without its errno, so a full
    disk looks like any other failure. When the filesystem has no room left for what was being
    written (or under a MiB), the failure is `OSError(ENOSPC)`, as every other writer raises it.
    A used-up quota leaves statvfs's free space untouched and cannot be told apart here."""
    if shutil.disk_usage(folder).free < max(wanted, _FULL_BELOW_BYTES):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from failure


class SoundfileSink:
    """WAV / FLAC through libsndfile, one block at a time."""

    def __init__(
        self,
        path: Path,
        samplerate: int,
        channels: int,
        container: str,
        subtype: str,
        to_pcm: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        self._to_pcm = to_pcm
        self._folder = path.parent
        try:
            self._file = sf.SoundFile(
                path, mode="w", samplerate=samplerate, channels=channels, format=container, subtype=subtype
            )
        except sf.LibsndfileError as exc:
            _raise_if_no_room(self._folder, 0, exc)
            raise

    def write(self, block: np.ndarray) -> None:
        pcm = np.ascontiguousarray(self._to_pcm(block).T)
        try:
            self._file.write(pcm)
        except sf.LibsndfileError as exc:
            _raise_if_no_room(self._folder, pcm.nbytes, exc)
            raise

    def close(self) -> None:
        try:
            self._file.close()
        except sf.LibsndfileError as exc:
            _raise_if_no_room(self._folder, 0, exc)
            raise


class OpusSink:
    """Ogg Opus through FFmpeg's libopus and Ogg muxer (see the module docstring for why)."""

    def __init__(self, path: Path, samplerate: int, channels: int, bitrate_kbps: int) -> None:
        self._samplerate = samplerate
        self._layout = "mono" if channels == 1 else "stereo"
        self._written = 0
        self._container = av.open(str(path), mode="w", format="ogg")
        try:
            self._stream = self._container.add_stream("libopus", rate=_OPUS_RATE, layout=self._layout)
            self._stream.bit_rate = min(bitrate_kbps, _OPUS_MAX_KBPS_PER_CHANNEL * channels) * 1000
            self._stream.format = "flt"
        except BaseException:
            self._container.close()
            raise

    def write(self, block: np.ndarray) -> None:
        # Clamped to full scale like every other output format.
        samples = np.ascontiguousarray(np.clip(block, -1.0, 1.0), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._layout)
        frame.sample_rate = self._samplerate
        frame.time_base = Fraction(1, self._samplerate)
        frame.pts = self._written
        self._written += block.shape[1]
        self._mux(frame)

    def close(self) -> None:
        try:
            self._mux(None)
        finally:
            self._container.close()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
