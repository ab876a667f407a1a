"""Write stems incrementally, in any output format, with Demucs's clipping strategies.

`StemWriter` never holds a whole stem: blocks go straight to the encoder, except in `rescale`
mode, where Demucs divides the stem by `max(1.01 * peak, 1)` and the peak is only known at the
end; there the float samples are spilled to an anonymous temporary file beside the output (on
disk, not in RAM; the OS deletes it even if the process dies) and encoded in a second pass at
`close()`. The output is written under a hidden temporary name and renamed into place when
complete, so nobody ever sees (or serves) half a stem. A full disk (or quota) is raised as
`StorageFull` whichever encoder hit it; `abort()` (what leaving a `with` block by an exception
calls) then removes the partial files, so the space is free again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from musicsep.model.errors import InvalidOptions, storage_full_is_typed

from .mp3 import MP3_RATES, Mp3Sink
from .sinks import OpusSink, Sink, SoundfileSink, pcm16, pcm24, pcm_float


@dataclass(frozen=True)
class OutputFormat:
    """An output format: its request name, the file extension (no dot) and its HTTP media type."""

    name: str
    extension: str
    media_type: str


FORMATS: dict[str, OutputFormat] = {
    "wav16": OutputFormat("wav16", "wav", "audio/wav"),
    "wav24": OutputFormat("wav24", "wav", "audio/wav"),
    "float32": OutputFormat("float32", "wav", "audio/wav"),
    "flac": OutputFormat("flac", "flac", "audio/flac"),
    "mp3": OutputFormat("mp3", "mp3", "audio/mpeg"),
    "ogg": OutputFormat("ogg", "ogg", "audio/ogg"),
}

CLIP_MODES = ("rescale", "clamp", "none")

#: kbps accepted per lossy codec (LAME's CBR range; Opus's documented range).
_BITRATES = {"mp3": (32, 320), "ogg": (6, 510)}
#: Frames read back per step in the second pass of `rescale`.
_SPILL_READ_FRAMES = 65536
#: Clip mode `clamp`'s bound (Demucs's): shared by the file writers, the live tap and the mix.
CLAMP_LIMIT = np.float32(0.99)


class StemWriter:
    """Encode one stem block by block: `write((channels, n) float32)` many times, then `close()`.

    Leaving a `with` block normally closes the writer; leaving it by an exception aborts it.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str | OutputFormat,
        samplerate: int,
        channels: int = 2,
        clip: str = "rescale",
        bitrate: int = 320,
    ) -> None:
        self.format = _resolve_format(fmt)
        if clip not in CLIP_MODES:
            raise InvalidOptions(f"Unknown clip mode {clip!r}; choose one of {', '.join(CLIP_MODES)}.")
        if self.format.name in _BITRATES:
            low, high = _BITRATES[self.format.name]
            if not low <= bitrate <= high:
                raise InvalidOptions(f"The {self.format.name} bitrate must be between {low} and {high} kbps.")
        if self.format.name == "mp3" and samplerate not in MP3_RATES:
            raise InvalidOptions(f"MP3 cannot store {samplerate} Hz audio; choose another format.")
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if samplerate <= 0:
            raise ValueError("samplerate must be positive")
        self.path = Path(path).absolute()
        self.samplerate = samplerate
        self.channels = channels
        self.clip = clip
        self.frames = 0
        self._peak = np.float32(0.0)
        self._done = False
        self._closed = False
        with storage_full_is_typed():
            fd, part = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        os.close(fd)
        self._part = Path(part)
        self._spill: BinaryIO | None = None
        try:
            with storage_full_is_typed():
                self._sink: Sink = _open_sink(self._part, self.format.name, samplerate, channels, bitrate)
                if clip == "rescale":
                    self._spill = tempfile.TemporaryFile(dir=self.path.parent, prefix=".spill-")
        except BaseException:
            self.abort()
            raise

    def write(self, block: np.ndarray) -> None:
        """Append `(channels, n)` samples (float32; other float types are converted)."""
        if self._done:
            raise RuntimeError("write() after close() or abort()")
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, n) block, got shape {block.shape}")
        if block.shape[1] == 0:
            return
        self.frames += block.shape[1]
        with storage_full_is_typed():
            if self._spill is not None:
                self._peak = max(self._peak, np.abs(block).max())
                self._spill.write(np.ascontiguousarray(block.T).tobytes())
            elif self.clip == "clamp":
                self._sink.write(np.clip(block, -CLAMP_LIMIT, CLAMP_LIMIT))
            else:
                self._sink.write(block)

    def close(self) -> Path:
        """Finish the file, move it into place and return its path. Aborts on failure."""
        if self._done:
            raise RuntimeError("close() after close() or abort()")
        try:
            with storage_full_is_typed():
                if self._spill is not None:
                    self._encode_spilled()
                self._sink.close()
                os.replace(self._part, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop and remove every partial file (the output's temporary name and the spill).

        Does nothing after a successful `close()`: the finished stem stays.
        """
        if self._closed:
            return
        self._done = True
        sink = getattr(self, "_sink", None)
        if sink is not None:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; its close may fail
                pass
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._part.unlink(missing_ok=True)

    def __enter__(self) -> StemWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.close()

    def _encode_spilled(self) -> None:
        """Second pass of `rescale`: exactly Demucs's `wav / max(1.01 * wav.abs().max(), 1)` in float32."""
        assert self._spill is not None
        scale = max(np.float32(1.01) * self._peak, np.float32(1.0))
        self._spill.seek(0)
        step = _SPILL_READ_FRAMES * self.channels * 4
        while data := self._spill.read(step):
            interleaved = np.frombuffer(data, dtype=np.float32).reshape(-1, self.channels)
            self._sink.write(interleaved.T / scale)
        self._spill.close()
        self._spill = None


def _resolve_format(fmt: str | OutputFormat) -> OutputFormat:
    name = fmt.name if isinstance(fmt, OutputFormat) else fmt
    if name not in FORMATS:
        raise InvalidOptions(f"Unknown output format {name!r}; choose one of {', '.join(FORMATS)}.")
    return FORMATS[name]


def _open_sink(path: Path, name: str, samplerate: int, channels: int, bitrate: int) -> Sink:
    if name == "wav16":
        return SoundfileSink(path, samplerate, channels, "WAV", "PCM_16", pcm16)
    if name == "wav24":
        return SoundfileSink(path, samplerate, channels, "WAV", "PCM_24", pcm24)
    if name == "float32":
        return SoundfileSink(path, samplerate, channels, "WAV", "FLOAT", pcm_float)
    if name == "flac":
        return SoundfileSink(path, samplerate, channels, "FLAC", "PCM_16", pcm16)
    if name == "mp3":
        return Mp3Sink(path, samplerate, channels, bitrate)
    return OpusSink(path, samplerate, channels, bitrate)
