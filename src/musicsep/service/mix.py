"""A mix of a job's stems with a gain each, rendered as one WAV file, streamed block by block.

What the page's mixer exports: `sum(gain_i * stem_i)`, clipped the way the job's stems were
(`rescale`: the whole mix divided by `max(1.01 * peak, 1)`, as Demucs does; `clamp`: each
sample at ±0.99; `none`: the WAV's own ±1 limit). The peak and the exact length are only known
after reading every stem, so the stems are read twice, one block of each at a time: once to
measure, once to write. Memory stays a few blocks however long the song, and the WAV header,
written before any sample, carries the exact length (so does Content-Length).
"""

from __future__ import annotations

import itertools
import wave
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Literal, cast

import numpy as np

from musicsep.model.audio.encode import CLAMP_LIMIT

#: Mix formats -> bytes per sample. WAV only: its header can be written before the samples.
MixFormat = Literal["wav16", "wav24"]
MIX_FORMATS: dict[str, int] = {"wav16": 2, "wav24": 3}
MIX_EXTENSION, MIX_MEDIA_TYPE = "wav", "audio/wav"
GAIN_MIN, GAIN_MAX = 0.0, 2.0
_BLOCK_FRAMES = 65536


class UnknownStem(Exception):
    """The gains name a stem the job does not have."""

    def __init__(self, names: list[str], stems: list[str]) -> None:
        super().__init__(
            f"this job has no stem {', '.join(map(repr, names))}; its stems are {', '.join(stems) or 'none'}"
        )


def full_gains(stems: list[str], gains: Mapping[str, float]) -> dict[str, float]:
    """A gain for every stem of the job: those not named keep theirs (1.0). UnknownStem for a name
    that is not one of them."""
    unknown = sorted(set(gains) - set(stems))
    if unknown:
        raise UnknownStem(unknown, stems)
    return {name: float(gains.get(name, 1.0)) for name in stems}


class _ByteSink:
    """A write-only file for `wave`: what it writes is handed out by `take`. `wave` never seeks
    it, because the header is written with the exact frame count before the samples."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer.extend(data)
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class MixStream:
    """The WAV bytes of one mix. `start()` (blocking) reads the stems once and sets `length`;
    iterating then yields the header and the samples."""

    def __init__(
        self,
        stem_files: Callable[[], AbstractContextManager[dict[str, Path]]],
        gains: dict[str, float],
        *,
        samplerate: int,
        clip: str,
        fmt: str,
    ) -> None:
        self.length: int | None = None
        self._stem_files = stem_files
        self._gains = gains
        self._samplerate = samplerate
        self._clip = clip
        self._width = MIX_FORMATS[fmt]
        self._chunks = self._render()
        self._first: bytes | None = None

    def start(self) -> None:
        self._first = next(self._chunks)

    def __iter__(self) -> Iterator[bytes]:
        if self._first is None:
            self.start()
        assert self._first is not None
        yield self._first
        yield from self._chunks

    def _render(self) -> Iterator[bytes]:
        # The stem files stay open (an S3 job's downloaded copies stay on disk) across both passes,
        # and are released when the stream ends or is dropped (a generator's close).
        with self._stem_files() as paths:
            frames, peak = 0, 0.0
            for block in self._mixed(paths):
                frames += block.shape[1]
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
            scale = np.float32(max(1.01 * peak, 1.0)) if self._clip == "rescale" else np.float32(1.0)
            sink = _ByteSink()
            out = wave.open(cast(BinaryIO, sink), "wb")  # closed below, after the last block
            out.setnchannels(2)
            out.setsampwidth(self._width)
            out.setframerate(self._samplerate)
            out.setnframes(frames)
            out.writeframesraw(b"")
            header = sink.take()
            self.length = len(header) + frames * 2 * self._width
            yield header
            for block in self._mixed(paths):
                out.writeframesraw(self._pcm(block / scale))
                yield sink.take()
            out.close()
            if tail := sink.take():
                yield tail

    def _mixed(self, paths: dict[str, Path]) -> Iterator[np.ndarray]:
        """`(2, n)` float32 blocks of sum(gain * stem); a stem that ends early counts as silence."""
        from musicsep.model.audio import decode_blocks

        names = list(self._gains)
        rate = self._samplerate
        readers = [decode_blocks(paths[name], samplerate=rate, block_frames=_BLOCK_FRAMES) for name in names]
        for blocks in itertools.zip_longest(*readers):
            length = max(block.shape[1] for block in blocks if block is not None)
            mix = np.zeros((2, length), dtype=np.float32)
            for name, block in zip(names, blocks, strict=True):
                if block is not None and self._gains[name]:
                    mix[:, : block.shape[1]] += np.float32(self._gains[name]) * block
            yield mix

    def _pcm(self, block: np.ndarray) -> bytes:
        """Interleaved little-endian integers, made as the stems' own (sinks.pcm16 / pcm24)."""
        from musicsep.model.audio.sinks import pcm16, pcm24

        if self._clip == "clamp":
            block = np.clip(block, -CLAMP_LIMIT, CLAMP_LIMIT)
        if self._width == 2:
            return np.ascontiguousarray(pcm16(block).T).astype("<i2").tobytes()
        # pcm24 puts the 24 bits in the top of an int32: its 3 high bytes, little-endian, are the sample.
        high = np.ascontiguousarray(pcm24(block).T).astype("<i4").view(np.uint8).reshape(-1, 4)[:, 1:]
        return high.tobytes()
