"""Decode any supported file into float32 blocks at the model's sample rate, never all at once.

PyAV (FFmpeg) does the demuxing, decoding, sample-format conversion, resampling and surround
down-mix; this module adds what a server needs around it: the container is recognised from its
bytes and FFmpeg is pinned to that one demuxer, the duration is counted from decoded samples
(headers lie), the maximum duration is enforced while decoding, and every way a file can be bad
ends in a typed error whose message never names the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from loguru import logger

from musicsep.model.errors import AudioTooLong, InvalidAudio, UnsupportedFormat

from .sniff import DEMUXERS, HEAD_BYTES, sniff_format

#: Input sample rates outside this range are refused: below it no music survives, above it a
#: lying header would make the resampler produce (or swallow) absurd amounts of audio.
MIN_SAMPLERATE = 4_000
MAX_SAMPLERATE = 768_000

#: The most channels an input may have: 24 is FFmpeg's largest standard layout (22.2), the
#: widest that its down-mix to stereo knows how to weigh. More (a 255-channel WAV) is refused.
MAX_CHANNELS = 24

#: Packets that fail to decode are skipped, as the ffmpeg CLI does, until more than this many
#: plus a tenth of the good ones have failed: then the stream is corrupt, not merely scratched.
_BAD_PACKET_ALLOWANCE = 8

#: How a container is named to the person who sent it.
_LABELS = {"ogg": "Ogg", "mp4": "MP4/M4A", "matroska": "MKV/WebM", "wavpack": "WavPack", "asf": "WMA"}

_SUPPORTED = "WAV, FLAC, MP3, Ogg Vorbis, Opus, M4A/AAC, AIFF, or the audio track of MP4, WebM or MKV"


@dataclass(frozen=True)
class AudioInfo:
    """What the container's header claims; `duration_s` is untrusted and may be None."""

    container: str
    codec: str
    samplerate: int
    channels: int
    duration_s: float | None


def probe(path: str | Path) -> AudioInfo:
    """Read the header of the first audio stream without decoding it."""
    with _open_audio(Path(path)) as (container, stream, name):
        ctx = stream.codec_context
        return AudioInfo(
            container=name,
            codec=ctx.name,
            samplerate=ctx.sample_rate,
            channels=ctx.channels,
            duration_s=_claimed_duration(container, stream),
        )


def decode_blocks(
    path: str | Path,
    *,
    samplerate: int,
    channels: int = 2,
    block_frames: int = 65536,
    max_duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield C-contiguous float32 blocks shaped `(channels, n)` at `samplerate`.

    Every block holds `block_frames` frames except the last. Samples are never resampled when the
    source already runs at `samplerate` (16-bit PCM decodes to x / 32768, like soundfile).
    Channels: mono is duplicated to stereo; stereo is averaged when `channels == 1` (Demucs's
    definition of mono); more than two channels go through FFmpeg's standard down-mix for the
    source layout (centre and surrounds at -3 dB, LFE dropped; an unlabelled layout is taken as
    FFmpeg's default for that channel count). Raises `UnsupportedFormat`, `InvalidAudio`, or
    `AudioTooLong` as soon as the decoded length passes `max_duration_s`.
    """
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    if samplerate <= 0 or block_frames <= 0:
        raise ValueError("samplerate and block_frames must be positive")
    limit = None if max_duration_s is None else math.floor(max_duration_s * samplerate)
    blocks = _Blocks(channels, block_frames)
    total = 0
    with _open_audio(Path(path)) as (container, stream, _):
        for chunk in _converted(_decoded_frames(container, stream), _Converter(samplerate)):
            total += chunk.shape[1]
            if limit is not None and total > limit:
                raise AudioTooLong(f"The audio is longer than the maximum of {max_duration_s:g} seconds.")
            yield from blocks.push(_check_finite(chunk))
    if total == 0:
        raise InvalidAudio("The file contains no audio samples.")
    yield from blocks.finish()


@contextmanager
def _open_audio(path: Path) -> Iterator[tuple[av.container.InputContainer, av.AudioStream, str]]:
    """Open the first audio stream, pinned to the demuxer its magic bytes name."""
    with _open_file(path) as file:
        name = sniff_format(file.read(HEAD_BYTES))
        if name is None:
            raise UnsupportedFormat(f"The file is not an audio format musicsep can read ({_SUPPORTED}).")
        file.seek(0)
        try:
            container = av.open(file, mode="r", format=DEMUXERS[name], metadata_errors="ignore")
        # OSError too: a header whose chunk sizes make the demuxer seek before the start of the
        # file fails in our Python file object's seek (EINVAL), not inside FFmpeg.
        except (av.FFmpegError, OSError) as exc:
            raise InvalidAudio(
                f"The file looks like {_LABELS.get(name, name.upper())} but cannot be read; "
                "it may be truncated or corrupt."
            ) from exc
        try:
            if not container.streams.audio:
                raise InvalidAudio("The file has no audio track.")
            stream = container.streams.audio[0]
            _check_stream(stream)
            yield container, stream, name
        finally:
            container.close()


@contextmanager
def _open_file(path: Path) -> Iterator[BinaryIO]:
    """Open the file ourselves, so FFmpeg gets bytes, never a name it could read as a URL.

    The checks come before `open()`, which would block forever on a FIFO or a terminal.
    """
    if path.is_dir():
        raise InvalidAudio("The input is a folder, not an audio file.")
    if not path.exists():
        raise InvalidAudio("The input file does not exist.")
    if not path.is_file():
        raise InvalidAudio("The input is not a regular file.")
    if path.stat().st_size == 0:
        raise InvalidAudio("The file is empty.")
    try:
        file = path.open("rb")
    except OSError as exc:
        raise InvalidAudio("The input file cannot be read.") from exc
    with file:
        yield file


def _check_stream(stream: av.AudioStream) -> None:
    ctx = stream.codec_context
    # No context at all when FFmpeg knows no codec for the container's tag (WAV format 0x1234).
    if ctx is None or ctx.codec is None or not ctx.codec.is_decoder:
        raise UnsupportedFormat("The file's audio codec is not supported.")
    if ctx.sample_rate:
        _check_samplerate(ctx.sample_rate)
    if ctx.channels == 0 and ctx.layout.nb_channels == 0:
        raise InvalidAudio("The audio track declares no channels.")
    if max(ctx.channels, ctx.layout.nb_channels) > MAX_CHANNELS:
        raise InvalidAudio(_too_many_channels(max(ctx.channels, ctx.layout.nb_channels)))


def _too_many_channels(channels: int, *, unlabelled: bool = False) -> str:
    what = f"{channels} channels in no standard layout" if unlabelled else f"{channels} channels"
    return (
        f"The audio has {what}; musicsep reads mono, stereo and the standard surround "
        f"layouts of up to {MAX_CHANNELS} channels."
    )


def _check_samplerate(rate: int) -> None:
    if not MIN_SAMPLERATE <= rate <= MAX_SAMPLERATE:
        raise InvalidAudio(
            f"The audio's sample rate ({rate} Hz) is outside the supported range {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz."
        )


def _claimed_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decoded_frames(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`, skipping scratched packets and stopping where the file breaks off."""
    good = bad = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            # A container that breaks off mid-file: keep what was decoded, as ffmpeg does.
            logger.warning("audio input ends in a damaged container after {} packets", good)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            bad += 1
            if bad > _BAD_PACKET_ALLOWANCE + good // 10:
                raise InvalidAudio("The audio stream is corrupt and cannot be decoded.") from None
            continue
        good += 1
        yield from frames


def _converted(frames: Iterator[av.AudioFrame], converter: _Converter) -> Iterator[np.ndarray]:
    for frame in frames:
        yield from converter.convert(frame)
    yield from converter.flush()


class _Converter:
    """Turns decoded frames into float32 planar arrays at the target rate.

    PyAV's `AudioResampler` (libswresample) converts the sample format, resamples only when the
    rates differ, and down-mixes >2 channels to stereo. A stream that changes format, layout or
    rate mid-way (chained Ogg) gets a fresh resampler after the old one's tail is flushed.
    """

    def __init__(self, samplerate: int) -> None:
        self._rate = samplerate
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> Iterator[np.ndarray]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self._key:
            yield from self.flush()
            _check_samplerate(frame.sample_rate)
            keep_layout = frame.layout.nb_channels <= 2
            self._resampler = av.AudioResampler(
                format="fltp", layout=frame.layout if keep_layout else "stereo", rate=self._rate
            )
            self._key = key
        assert self._resampler is not None
        try:
            converted = self._resampler.resample(frame)
        except av.FFmpegError:
            if frame.layout.nb_channels <= 2:
                raise
            # An unlabelled channel count FFmpeg has no default layout for (9, 11, 13...): its
            # down-mix cannot tell which channel is which, so it cannot weigh them.
            raise InvalidAudio(_too_many_channels(frame.layout.nb_channels, unlabelled=True)) from None
        for out in converted:
            yield out.to_ndarray()

    def flush(self) -> Iterator[np.ndarray]:
        if self._resampler is not None:
            for out in self._resampler.resample(None):
                yield out.to_ndarray()
        self._resampler = None
        self._key = None


def _check_finite(chunk: np.ndarray) -> np.ndarray:
    if not np.isfinite(chunk).all():
        raise InvalidAudio("The audio contains invalid sample values (NaN or infinity).")
    return chunk


class _Blocks:
    """Re-cuts arbitrary-length chunks into blocks of exactly `block_frames`, mapping channels."""

    def __init__(self, channels: int, block_frames: int) -> None:
        self._channels = channels
        self._size = block_frames
        self._pending: list[np.ndarray] = []
        self._count = 0

    def push(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        if chunk.shape[1] == 0:
            return
        self._pending.append(chunk)
        self._count += chunk.shape[1]
        while self._count >= self._size:
            joined = np.concatenate(self._pending, axis=1)
            self._pending = [joined[:, self._size :]]
            self._count -= self._size
            yield self._map_channels(joined[:, : self._size])

    def finish(self) -> Iterator[np.ndarray]:
        if self._count:
            yield self._map_channels(np.concatenate(self._pending, axis=1))
        self._pending, self._count = [], 0

    def _map_channels(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] == self._channels:
            return np.ascontiguousarray(block, dtype=np.float32)
        if self._channels == 2:
            return np.ascontiguousarray(np.broadcast_to(block[:1], (2, block.shape[1])), dtype=np.float32)
        return np.ascontiguousarray(block.mean(axis=0, keepdims=True, dtype=np.float32))
