"""Encoding: every output format reads back as what was written, Demucs's clipping is reproduced
exactly, stems are written block by block in bounded memory, and aborted stems leave nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from musicsep.model.audio import CLIP_MODES, FORMATS, OutputFormat, StemWriter, decode_blocks
from musicsep.model.errors import InvalidOptions

RATE = 44100


def write_stem(path: Path, fmt: str, signal: np.ndarray, block: int = 3000, **kwargs) -> Path:
    with StemWriter(path, fmt, RATE, channels=signal.shape[0], **kwargs) as writer:
        for start in range(0, signal.shape[1], block):
            writer.write(signal[:, start : start + block])
    return path


def read_back(path: Path, channels: int = 2) -> np.ndarray:
    return np.concatenate(list(decode_blocks(path, samplerate=RATE, channels=channels)), axis=1)


def best_lag(decoded: np.ndarray, reference: np.ndarray, slack: int) -> int:
    end = min(decoded.size, reference.size) - slack
    window = reference[slack:end]
    scores = [float(np.dot(decoded[slack + lag : end + lag], window)) for lag in range(-slack, slack + 1)]
    return int(np.argmax(scores)) - slack


def snr_db(decoded: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((decoded - reference) ** 2), 1e-20)))


def open_file_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return targets


def test_formats_table() -> None:
    assert set(FORMATS) == {"wav16", "wav24", "float32", "flac", "mp3", "ogg"}
    assert FORMATS["wav24"] == OutputFormat("wav24", "wav", "audio/wav")
    assert (FORMATS["flac"].extension, FORMATS["mp3"].media_type, FORMATS["ogg"].media_type) == (
        "flac",
        "audio/mpeg",
        "audio/ogg",
    )
    assert CLIP_MODES == ("rescale", "clamp", "none")


#: format -> largest error after a round trip (None: lossy, judged by SNR)
TOLERANCE = {"wav16": 2 / 32768, "flac": 2 / 32768, "wav24": 2 / 2**23, "float32": 0.0, "mp3": None, "ogg": None}


@pytest.mark.parametrize("channels", [2, 1])
@pytest.mark.parametrize("fmt", list(TOLERANCE))
def test_every_output_format_reads_back(tmp_path: Path, audio_kit, fmt: str, channels: int) -> None:
    signal = audio_kit.tones(channels=channels)
    path = write_stem(tmp_path / f"vocals.{FORMATS[fmt].extension}", fmt, signal, clip="none")
    decoded = read_back(path, channels)
    tolerance = TOLERANCE[fmt]
    if tolerance is not None:
        assert decoded.shape == signal.shape
        assert np.max(np.abs(decoded - signal)) <= tolerance
        return
    # Lossy: the file records the codec delay and padding (LAME tag; Opus pre-skip and end
    # granule), so the stem keeps the input's length and lines up with the mix sample for sample
    # (Opus is resampled 44.1k -> 48k -> 44.1k: ±1).
    assert abs(decoded.shape[1] - signal.shape[1]) <= (1 if fmt == "ogg" else 0)
    lag = best_lag(decoded[0], signal[0], 1000)
    assert lag == 0
    length = min(decoded.shape[1], signal.shape[1])
    for channel in range(channels):
        assert snr_db(decoded[channel, :length], signal[channel, :length]) > 20


@pytest.mark.parametrize("fmt", ["wav16", "flac"])
def test_lossless_files_are_standard(tmp_path: Path, audio_kit, fmt: str) -> None:
    """Another reader (libsndfile) sees the same 16-bit samples in our files."""
    signal = audio_kit.tones()
    path = write_stem(tmp_path / f"drums.{FORMATS[fmt].extension}", fmt, signal, clip="none")
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 2, signal.shape[1], "PCM_16")


@pytest.mark.parametrize(
    ("rate", "channels", "kbps"), [(44100, 2, 320), (48000, 1, 128), (22050, 2, 64), (8000, 1, 32)]
)
def test_mp3_is_gapless_for_another_decoder(tmp_path: Path, rate: int, channels: int, kbps: int) -> None:
    """libsndfile (mpg123) also reads our LAME tag: exact length, no delay, at every MPEG version."""
    t = np.arange(int(rate * 1.3) + 11) / rate
    tone = (0.5 * np.sin(2 * np.pi * (200 * t + 600 * t**2))).astype(np.float32)  # a chirp: one best lag
    signal = np.stack([tone, -tone][:channels])
    path = tmp_path / "stem.mp3"
    with StemWriter(path, "mp3", rate, channels=channels, bitrate=kbps) as writer:
        for start in range(0, signal.shape[1], 5000):
            writer.write(signal[:, start : start + 5000])
    decoded, samplerate = sf.read(path, dtype="float32", always_2d=True)
    assert (samplerate, decoded.shape) == (rate, (signal.shape[1], channels))
    assert best_lag(decoded[:, 0], tone, 200) == 0
    assert snr_db(decoded[:, 0], tone) > 15


@pytest.mark.parametrize("clip", CLIP_MODES)
@pytest.mark.parametrize(
    ("fmt", "bits", "as_float"), [("wav16", 16, False), ("wav24", 24, False), ("float32", 32, True)]
)
@pytest.mark.parametrize("peak", [0.5, 1.7])
def test_samples_equal_demucs_save_audio(
    tmp_path: Path, fmt: str, bits: int, as_float: bool, clip: str, peak: float
) -> None:
    """Same numbers in the file as Demucs 4.1's own `save_audio`, clipping strategy included."""
    import torch
    from demucs.audio import save_audio

    rng = np.random.default_rng(11)
    signal = rng.uniform(-1, 1, (2, 20_011)).astype(np.float32)
    signal *= peak / np.max(np.abs(signal))
    ours = write_stem(tmp_path / "ours.wav", fmt, signal, block=4096, clip=clip)
    theirs = tmp_path / "demucs.wav"
    save_audio(torch.from_numpy(signal.copy()), theirs, RATE, clip=clip, bits_per_sample=bits, as_float=as_float)
    dtype = "float32" if as_float else "int32"
    np.testing.assert_array_equal(sf.read(ours, dtype=dtype)[0], sf.read(theirs, dtype=dtype)[0])


def test_rescale_is_demucs_prevent_clip(tmp_path: Path) -> None:
    import torch
    from demucs.audio import prevent_clip

    t = np.arange(30_000) / RATE
    loud = np.stack([1.8 * np.sin(2 * np.pi * 100 * t), 0.3 * np.sin(2 * np.pi * 200 * t)]).astype(np.float32)
    decoded = read_back(write_stem(tmp_path / "bass.wav", "float32", loud, block=1000, clip="rescale"))
    expected = prevent_clip(torch.from_numpy(loud.copy()), "rescale").numpy()
    np.testing.assert_array_equal(decoded, expected)
    assert np.max(np.abs(decoded)) == pytest.approx(1 / 1.01)


def test_clamp_and_none(tmp_path: Path) -> None:
    loud = np.array([[1.5, -1.5, 0.995, 0.5]] * 2, dtype=np.float32)
    clamped = read_back(write_stem(tmp_path / "c.wav", "float32", loud, clip="clamp"))
    np.testing.assert_array_equal(clamped[0], np.float32([0.99, -0.99, 0.99, 0.5]))
    # `none` still cannot store more than full scale in 16 bits: it saturates, never wraps around.
    raw = sf.read(write_stem(tmp_path / "n.wav", "wav16", loud, clip="none"), dtype="int16")[0]
    np.testing.assert_array_equal(raw[:, 0], [32767, -32767, 32603, 16383])


def test_rescale_spills_beside_the_output_not_into_memory(tmp_path: Path) -> None:
    """Three minutes of float stereo (64 MB) pass through in rescale mode; RSS stays flat."""
    out_dir = tmp_path / "stems"
    out_dir.mkdir()
    block = np.random.default_rng(2).uniform(-1.2, 1.2, (2, RATE)).astype(np.float32)
    process = psutil.Process()
    with StemWriter(out_dir / "other.wav", "wav16", RATE, clip="rescale") as writer:
        writer.write(block)
        baseline = process.memory_info().rss
        growth = 0
        for _ in range(179):
            writer.write(block)
            growth = max(growth, process.memory_info().rss - baseline)
        if Path("/proc/self/fd").is_dir():  # Linux: the spill is an open (unnamed) file in out_dir
            spills = [t for t in open_file_targets() if t.startswith(f"{out_dir}/") and t.endswith("(deleted)")]
            assert len(spills) == 1
    assert growth < 16 * 2**20, f"RSS grew {growth / 2**20:.1f} MB"
    assert sf.info(out_dir / "other.wav").frames == 180 * RATE
    assert sorted(p.name for p in out_dir.iterdir()) == ["other.wav"]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("clip", ["rescale", "none"])
def test_abort_leaves_no_files(tmp_path: Path, audio_kit, fmt: str, clip: str) -> None:
    signal = audio_kit.tones(0.3)
    target = tmp_path / f"vocals.{FORMATS[fmt].extension}"
    writer = StemWriter(target, fmt, RATE, clip=clip)
    writer.write(signal)
    assert not target.exists()  # the stem only appears, whole, at close()
    writer.abort()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_exception_inside_with_aborts(tmp_path: Path, audio_kit) -> None:
    with pytest.raises(KeyboardInterrupt):
        with StemWriter(tmp_path / "drums.mp3", "mp3", RATE) as writer:
            writer.write(audio_kit.tones(0.2))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_close_leaves_only_the_stem(tmp_path: Path, audio_kit) -> None:
    writer = StemWriter(tmp_path / "bass.ogg", "ogg", RATE)
    writer.write(audio_kit.tones(0.2))
    assert writer.close() == tmp_path / "bass.ogg"
    writer.abort()  # after a successful close it keeps the finished stem
    assert [p.name for p in tmp_path.iterdir()] == ["bass.ogg"]
    with pytest.raises(RuntimeError):
        writer.write(audio_kit.tones(0.1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fmt": "aiff"},
        {"fmt": "mp3", "clip": "tanh"},
        {"fmt": "mp3", "bitrate": 1000},
        {"fmt": "ogg", "bitrate": 2},
        {"fmt": "mp3", "samplerate": 96000},
    ],
)
def test_bad_options_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(InvalidOptions) as caught:
        StemWriter(tmp_path / "x", **{"samplerate": RATE, **kwargs})
    assert caught.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("fmt", "low", "high"), [("mp3", 128, 320), ("ogg", 48, 192)])
def test_bitrate_sets_the_file_size(tmp_path: Path, audio_kit, fmt: str, low: int, high: int) -> None:
    signal = audio_kit.tones(3.0)
    sizes = {}
    for kbps in (low, high):
        path = write_stem(tmp_path / f"{kbps}.{fmt}", fmt, signal, bitrate=kbps)
        sizes[kbps] = path.stat().st_size
        if fmt == "mp3":  # constant bitrate: size is the bitrate times the duration
            assert sizes[kbps] == pytest.approx(kbps * 1000 / 8 * 3.0, rel=0.1)
    assert sizes[high] > 2 * sizes[low]
