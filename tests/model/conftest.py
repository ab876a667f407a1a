"""Audio fixtures for the model-layer audio tests: a known signal and encoders for every input format.

The test files are made here, in tmp_path, by libraries independent of the decoder under test
where one exists (soundfile for WAV/FLAC/AIFF/Vorbis) and by PyAV's encoders otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile as sf

AUDIO_RATE = 44100

#: name -> (file suffix, lossless?); lossless ones must decode within 1 LSB.
AUDIO_INPUT_FORMATS: dict[str, tuple[str, bool]] = {
    "wav16": (".wav", True),
    "wav24": (".wav", True),
    "wav_float": (".wav", True),
    "flac": (".flac", True),
    "aiff": (".aiff", True),
    "mkv_flac": (".mkv", True),
    "mp3": (".mp3", False),
    "ogg_vorbis": (".ogg", False),
    "opus": (".opus", False),
    "m4a_aac": (".m4a", False),
    "mp4_video_aac": (".mp4", False),
    "webm_video_opus": (".webm", False),
}

_SOUNDFILE = {
    "wav16": ("WAV", "PCM_16"),
    "wav24": ("WAV", "PCM_24"),
    "wav_float": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_16"),
    "aiff": ("AIFF", "PCM_16"),
    "ogg_vorbis": ("OGG", "VORBIS"),
}
#: name -> (container, audio codec, audio sample format, video codec or None)
_PYAV = {
    "mkv_flac": ("matroska", "flac", "s16", "mpeg4"),
    "mp3": ("mp3", "libmp3lame", "fltp", None),
    "opus": ("ogg", "libopus", "flt", None),
    "m4a_aac": ("ipod", "aac", "fltp", None),
    "mp4_video_aac": ("mp4", "aac", "fltp", "libx264"),
    "webm_video_opus": ("webm", "libopus", "flt", "libvpx"),
}


def audio_tones(seconds: float = 1.0, samplerate: int = AUDIO_RATE, channels: int = 2) -> np.ndarray:
    """A different chord in each channel, (channels, n) float32, quantised to 16 bits so that
    every lossless format stores it exactly."""
    n = int(seconds * samplerate) + 17  # deliberately not a multiple of any codec frame
    t = np.arange(n) / samplerate
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.25 * np.sin(2 * np.pi * 2000 * t)
    signal = np.stack([left, right][:channels]) if channels <= 2 else np.stack([left] * channels)
    return (np.round(signal * 32768) / 32768).astype(np.float32)


def audio_write(path: Path, name: str, signal: np.ndarray, samplerate: int = AUDIO_RATE) -> Path:
    """Encode `signal` (channels, n) as input format `name` at `path`."""
    if name in _SOUNDFILE:
        container, subtype = _SOUNDFILE[name]
        sf.write(path, signal.T, samplerate, format=container, subtype=subtype)
        return path
    container, codec, sample_format, video = _PYAV[name]
    audio_pyav_write(
        path, container, signal, samplerate, audio_codec=codec, sample_format=sample_format, video_codec=video
    )
    return path


def audio_pyav_write(
    path: Path,
    container_format: str,
    signal: np.ndarray | None,
    samplerate: int = AUDIO_RATE,
    *,
    audio_codec: str | None = None,
    sample_format: str = "fltp",
    video_codec: str | None = None,
    video_seconds: float = 1.0,
) -> Path:
    """Write an audio track and/or a tiny video track with PyAV (a video-only file when signal is None)."""
    with av.open(str(path), "w", format=container_format) as out:
        video = audio = None
        if video_codec is not None:
            video = out.add_stream(video_codec, rate=10)
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        if signal is not None:
            layout = "mono" if signal.shape[0] == 1 else "stereo"
            rate = 48000 if audio_codec == "libopus" else samplerate
            audio = out.add_stream(audio_codec, rate=rate, layout=layout)
            audio.format = sample_format
        if video is not None:
            for index in range(int(video_seconds * 10)):
                image = np.full((64, 64, 3), index * 20 % 256, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
        if audio is not None:
            assert signal is not None
            for start in range(0, signal.shape[1], 4096):
                chunk = np.ascontiguousarray(signal[:, start : start + 4096])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = samplerate
                frame.time_base = Fraction(1, samplerate)
                frame.pts = start
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


@pytest.fixture
def audio_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `audio_file(name, signal=None, samplerate=44100) -> Path` in tmp_path."""

    def make(name: str, signal: np.ndarray | None = None, samplerate: int = AUDIO_RATE) -> Path:
        suffix = AUDIO_INPUT_FORMATS[name][0]
        if signal is None:
            signal = audio_tones(samplerate=samplerate)
        return audio_write(tmp_path / f"input-{name}{suffix}", name, signal, samplerate)

    return make


@pytest.fixture(scope="session")
def audio_kit() -> SimpleNamespace:
    """The helpers above for tests that build their own files (tests cannot import a conftest)."""
    return SimpleNamespace(
        rate=AUDIO_RATE,
        formats=AUDIO_INPUT_FORMATS,
        tones=audio_tones,
        write=audio_write,
        pyav_write=audio_pyav_write,
    )


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for tests of tiny models: on a small shared CPU two threads mostly
    wait on each other (a tiny RoFormer forward measured 30x slower with 2 threads than with 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
