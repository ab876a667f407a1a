"""Decoding: every input format round-trips, blocks are streamed, channels and rates are converted.

Each test encodes a known signal in tmp_path (see conftest.py), decodes it with `decode_blocks`
and compares what a listener would notice: the same samples (lossless), the same sound at the
same time (lossy: SNR after a bounded alignment search), the same length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicsep.model.audio import decode_blocks, probe, sniff_format
from musicsep.model.errors import AudioTooLong

RATE = 44100
LSB16 = 1 / 32768
#: Lossy codecs may pad the end up to a frame or two (AAC: 1024 per frame) and shift the start
#: by their delay when the container does not record it; search alignment within this many frames.
LOSSY_SLACK = 2048

#: container name sniffed from each input format of conftest.AUDIO_INPUT_FORMATS
SNIFFED = {
    "wav16": "wav",
    "wav24": "wav",
    "wav_float": "wav",
    "flac": "flac",
    "aiff": "aiff",
    "mkv_flac": "matroska",
    "mp3": "mp3",
    "ogg_vorbis": "ogg",
    "opus": "ogg",
    "m4a_aac": "mp4",
    "mp4_video_aac": "mp4",
    "webm_video_opus": "matroska",
}


def decode(path: Path, **kwargs) -> np.ndarray:
    kwargs.setdefault("samplerate", RATE)
    return np.concatenate(list(decode_blocks(path, **kwargs)), axis=1)


def best_lag(decoded: np.ndarray, reference: np.ndarray, slack: int) -> int:
    """The shift of `decoded` against `reference` (within ±slack) with the largest correlation."""
    window = reference[: 3 * slack]
    scores = [
        float(np.dot(decoded[lag : lag + window.size], window))
        if lag >= 0
        else float(np.dot(decoded[: window.size + lag], window[-lag:]))
        for lag in range(-slack, slack + 1)
    ]
    return int(np.argmax(scores)) - slack


def snr_db(decoded: np.ndarray, reference: np.ndarray) -> float:
    noise = decoded - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-20)))


@pytest.mark.parametrize("name", list(SNIFFED))
def test_every_input_format_round_trips(audio_kit, audio_file, name: str) -> None:
    signal = audio_kit.tones()
    path = audio_file(name, signal)
    decoded = decode(path)
    n = signal.shape[1]
    assert decoded.dtype == np.float32 and decoded.shape[0] == 2
    lossless = audio_kit.formats[name][1]
    if lossless:
        assert decoded.shape[1] == n
        assert np.max(np.abs(decoded - signal)) <= LSB16
        return
    assert n - LOSSY_SLACK <= decoded.shape[1] <= n + LOSSY_SLACK
    lag = best_lag(decoded[0], signal[0], LOSSY_SLACK)
    aligned = decoded[:, max(lag, 0) :]
    reference = signal[:, max(-lag, 0) :]
    length = min(aligned.shape[1], reference.shape[1])
    for channel in range(2):  # each channel keeps its own chord: not swapped, not mixed
        assert snr_db(aligned[channel, :length], reference[channel, :length]) > 20, (name, channel, lag)


@pytest.mark.parametrize("name", list(SNIFFED))
def test_sniff_and_probe_name_the_container(audio_file, name: str) -> None:
    path = audio_file(name)
    assert sniff_format(path.read_bytes()[:16]) == SNIFFED[name]
    info = probe(path)
    assert info.container == SNIFFED[name]
    assert info.channels == 2
    assert info.samplerate in (RATE, 48000)  # Opus always runs at 48 kHz
    assert info.duration_s is None or 0.9 < info.duration_s < 1.1


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "PCM_U8"])
def test_pcm_at_the_target_rate_is_not_resampled(tmp_path: Path, subtype: str) -> None:
    """Same numbers as soundfile (and so Demucs): 16-bit x decodes to exactly x / 32768."""
    rng = np.random.default_rng(3)
    path = tmp_path / "noise.wav"
    sf.write(path, rng.uniform(-0.9, 0.9, (30_001, 2)), RATE, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(decode(path), expected.T)


@pytest.mark.parametrize(
    ("source_rate", "target_rate"), [(44100, 48000), (48000, 44100), (22050, 44100), (8000, 44100)]
)
def test_resampling_keeps_length_and_pitch(tmp_path: Path, audio_kit, source_rate: int, target_rate: int) -> None:
    seconds = 1.5
    n = int(seconds * source_rate) + 3
    t = np.arange(n) / source_rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([tone, -tone], axis=1), source_rate, subtype="FLOAT")
    decoded = decode(path, samplerate=target_rate, block_frames=4000)
    assert abs(decoded.shape[1] - round(n * target_rate / source_rate)) <= 1
    t_out = np.arange(decoded.shape[1]) / target_rate
    expected = 0.5 * np.sin(2 * np.pi * 440 * t_out)
    inner = slice(target_rate // 10, -target_rate // 10)  # away from the resampler's edges
    assert snr_db(decoded[0, inner], expected[inner]) > 40
    np.testing.assert_array_equal(decoded[1], -decoded[0])


def test_mono_is_duplicated_to_both_channels(tmp_path: Path, audio_kit) -> None:
    mono = audio_kit.tones(channels=1)
    path = audio_kit.write(tmp_path / "mono.wav", "wav16", mono)
    decoded = decode(path)
    np.testing.assert_array_equal(decoded[0], mono[0])
    np.testing.assert_array_equal(decoded[1], mono[0])
    resampled = decode(path, samplerate=48000)
    np.testing.assert_array_equal(resampled[0], resampled[1])
    assert np.max(np.abs(resampled[0])) == pytest.approx(np.max(np.abs(mono)), abs=0.01)  # no -3 dB pan law


def test_stereo_to_mono_is_the_average_of_the_channels(audio_kit, audio_file) -> None:
    signal = audio_kit.tones()
    decoded = decode(audio_file("wav16", signal), channels=1)
    assert decoded.shape == (1, signal.shape[1])
    np.testing.assert_allclose(decoded[0], signal.mean(axis=0), atol=1e-7)


def test_surround_is_downmixed_to_stereo(tmp_path: Path) -> None:
    """5.1 (FL FR FC LFE BL BR): centre in both sides at -3 dB, each surround to its side, no LFE."""
    levels = np.array([0.1, 0.2, 0.3, 0.4, 0.05, 0.06], dtype=np.float32)
    path = tmp_path / "surround.wav"
    sf.write(path, np.tile(levels, (5000, 1)), RATE, subtype="FLOAT")
    decoded = decode(path)
    assert decoded.shape == (2, 5000)
    gain = np.sqrt(0.5)
    np.testing.assert_allclose(decoded[0, 100:-100], 0.1 + gain * 0.3 + gain * 0.05, atol=1e-5)
    np.testing.assert_allclose(decoded[1, 100:-100], 0.2 + gain * 0.3 + gain * 0.06, atol=1e-5)


def test_blocks_are_fixed_size_contiguous_float32(audio_kit, audio_file) -> None:
    signal = audio_kit.tones()
    blocks = list(decode_blocks(audio_file("mp3", signal), samplerate=RATE, block_frames=10_000))
    assert [b.shape[1] for b in blocks[:-1]] == [10_000] * (len(blocks) - 1)
    assert 0 < blocks[-1].shape[1] <= 10_000
    assert sum(b.shape[1] for b in blocks) == signal.shape[1]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous and b.shape[0] == 2 for b in blocks)


def test_max_duration_is_enforced_while_decoding(audio_kit, audio_file) -> None:
    path = audio_file("flac", audio_kit.tones(3.0))
    handed_out = 0
    with pytest.raises(AudioTooLong, match="maximum of 1 seconds"):
        for block in decode_blocks(path, samplerate=RATE, block_frames=4096, max_duration_s=1.0):
            handed_out += block.shape[1]
    assert 0 < handed_out <= RATE  # streamed up to the limit, never past it
    assert decode(path, max_duration_s=3.1).shape[1] == audio_kit.tones(3.0).shape[1]


def test_duration_is_counted_from_samples_not_the_header(tmp_path: Path, audio_kit) -> None:
    """A FLAC whose STREAMINFO claims 1 s but holds 3 s is still refused at a 2 s limit."""
    whole = audio_kit.write(tmp_path / "whole.flac", "flac", audio_kit.tones(3.0)).read_bytes()
    lying = bytearray(whole)
    lying[21] &= 0xF0  # the 36-bit total-samples field of STREAMINFO starts in byte 21's low nibble
    lying[22:26] = RATE.to_bytes(4, "big")
    path = tmp_path / "lying.flac"
    path.write_bytes(bytes(lying))
    assert probe(path).duration_s == pytest.approx(1.0)
    with pytest.raises(AudioTooLong):
        decode(path, max_duration_s=2.0)


def test_resampled_input_counts_against_the_limit_at_the_output_rate(tmp_path: Path, audio_kit) -> None:
    path = audio_kit.write(tmp_path / "low.wav", "wav16", audio_kit.tones(2.0, samplerate=8000), samplerate=8000)
    assert decode(path, max_duration_s=2.1).shape[1] == pytest.approx(2.0 * RATE, abs=200)
    with pytest.raises(AudioTooLong):
        decode(path, max_duration_s=1.9)


@pytest.mark.parametrize(("name", "keep"), [("wav16", 0.5), ("flac", 0.5), ("mp3", 0.5), ("mkv_flac", 0.6)])
def test_a_file_cut_mid_stream_decodes_what_is_there(tmp_path: Path, audio_kit, name: str, keep: float) -> None:
    signal = audio_kit.tones(2.0)
    whole = audio_kit.write(tmp_path / f"whole{audio_kit.formats[name][0]}", name, signal).read_bytes()
    path = tmp_path / f"cut{audio_kit.formats[name][0]}"
    path.write_bytes(whole[: int(len(whole) * keep)])
    decoded = decode(path)
    assert 0.3 * signal.shape[1] < decoded.shape[1] < 0.8 * signal.shape[1]
    assert snr_db(decoded[0, :20_000], signal[0, :20_000]) > 20


def test_a_scratched_mp3_skips_the_damage(tmp_path: Path, audio_kit) -> None:
    signal = audio_kit.tones(2.0)
    data = bytearray(audio_kit.write(tmp_path / "clean.mp3", "mp3", signal).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1500] = np.random.default_rng(5).bytes(1500)
    path = tmp_path / "scratched.mp3"
    path.write_bytes(bytes(data))
    decoded = decode(path)
    assert decoded.shape[1] > 0.8 * signal.shape[1]
    assert np.isfinite(decoded).all()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (bytes.fromhex("726966662e91cf11a5d628db04c10000"), "w64"),
        (b"FORM\x00\x00\x10\x00AIFFCOMM", "aiff"),
        (b"FORM\x00\x00\x10\x00AIFCFVER", "aiff"),
        (b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00", "flac"),
        (b"ID3\x04\x00\x00\x00\x00\x01\x00", "mp3"),
        (b"\xff\xfb\x90\x64\x00\x00", "mp3"),
        (b"\xff\xf3\x84\xc4\x00\x00", "mp3"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "aac"),
        (b"OggS\x00\x02\x00\x00", "ogg"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "matroska"),
        (b"caff\x00\x01\x00\x00", "caf"),
        (b".snd\x00\x00\x00\x18", "au"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "asf"),
        (b"wvpk\x00\x00\x00\x00", "wavpack"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", None),
        (b"GIF89a\x01\x00\x01\x00", None),
        (b"%PDF-1.7\n%\xe2\xe3", None),
        (b"PK\x03\x04\x14\x00\x00\x00", None),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
        (b"<!DOCTYPE html><html>", None),
        (b"#EXTM3U\n#EXTINF:", None),
        (b"\xff\xff\xff\xff\xff\xff", None),  # sync bits with a reserved bitrate and rate
        (b"\xff\xfa", None),  # too short to be a frame header
        (b"", None),
    ],
)
def test_sniff_format_magic_numbers(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected
