"""Encoder back-ends behind `StemWriter`: each takes float32 `(channels, n)` blocks as they come.

Lossless formats go through soundfile (libsndfile). Their integer samples are made exactly as
Demucs 4.1's `encode_wav` makes them (clamp to [-1, 1], scale by 2**15 - 1 or 2**23 - 1,
truncate), so a musicsep stem file holds the same numbers as the Demucs CLI's.

MP3 and Ogg Opus go through PyAV (FFmpeg's libmp3lame and libopus) rather than lameenc or
libsndfile: FFmpeg's muxers write the encoder delay and padding into the file (LAME/Xing tag,
Opus pre-skip and end granule), so a decoded stem has exactly the input's length and no leading
silence, whereas lameenc's raw frames come back about 1,200 samples longer and shifted; and the
bitrate is an exact CBR kbps setting, where libsndfile only offers a 0-1 "compression level".
Opus only runs at 48 kHz among the usual rates, so PyAV's encoder resamples into it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile as sf

#: Sample rates LAME encodes natively; anything else is resampled to 48 kHz by PyAV.
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_OPUS_RATE = 48000
#: LAME's -q 2, the quality Demucs uses for mp3 ("2: highest").
_MP3_QUALITY = "2"


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


class SoundfileSink:
    """WAV / FLAC through libsndfile, one block at a time."""

    def __init__(self, path: Path, samplerate: int, channels: int, container: str, subtype: str, to_pcm) -> None:
        self._to_pcm = to_pcm
        self._file = sf.SoundFile(
            path, mode="w", samplerate=samplerate, channels=channels, format=container, subtype=subtype
        )

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(self._to_pcm(block).T))

    def close(self) -> None:
        self._file.close()


class PyAVSink:
    """MP3 or Ogg Opus through FFmpeg's encoders and muxers (see the module docstring for why)."""

    def __init__(self, path: Path, samplerate: int, channels: int, codec: str, bitrate_kbps: int) -> None:
        self._samplerate = samplerate
        self._layout = "mono" if channels == 1 else "stereo"
        self._written = 0
        if codec == "libmp3lame":
            container, rate, options = "mp3", samplerate if samplerate in _MP3_RATES else 48000, {
                "compression_level": _MP3_QUALITY
            }
        else:
            container, rate, options = "ogg", _OPUS_RATE, {}
        self._container = av.open(str(path), mode="w", format=container)
        try:
            self._stream = self._container.add_stream(codec, rate=rate, layout=self._layout, options=options)
            self._stream.bit_rate = bitrate_kbps * 1000
            self._stream.format = "fltp" if codec == "libmp3lame" else "flt"
        except BaseException:
            self._container.close()
            raise

    def write(self, block: np.ndarray) -> None:
        # Clamped like Demucs's i16_pcm does before its mp3 encoder.
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
