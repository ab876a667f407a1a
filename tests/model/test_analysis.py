"""Track analysis as a user sees it: known tempo, known key, honest nulls, any rate or layout."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyloudnorm
import pytest
import soundfile

from musicsep.model.analysis import (
    AnalysisResult,
    analyze_blocks,
    analyze_file,
    analyze_stems,
)
from musicsep.model.errors import InvalidAudio

SR = 44100
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def blocks(audio: np.ndarray, size: int = 32768):
    for start in range(0, audio.shape[-1], size):
        yield audio[..., start : start + size]


def click_track(bpm: float, seconds: float, sr: int = SR) -> np.ndarray:
    """A metronome: a short 1 kHz blip with a low thump on every beat."""
    out = np.zeros(int(seconds * sr), dtype=np.float32)
    t = np.arange(int(0.06 * sr)) / sr
    blip = (np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 80 * t)) * np.exp(-t / 0.01) * 0.4
    for beat in np.arange(0, seconds, 60.0 / bpm):
        start = int(beat * sr)
        out[start : start + blip.size] += blip[: out.size - start]
    return out


def tone(midi: int, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    partials = [np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < 0.45 * sr]
    return np.sum(partials, axis=0) * np.exp(-2.0 * t)


def cadence(tonic: int, mode: str, seconds: float, sr: int = SR, bpm: float = 100.0) -> np.ndarray:
    """I-IV-V-I (or i-iv-V-i), a chord struck on every beat, the root in the bass each bar."""
    third = 4 if mode == "major" else 3
    chords = [(0, third), (5, 4 if mode == "major" else 3), (7, 4), (0, third)]
    beat = 60.0 / bpm
    out = np.zeros(int(seconds * sr) + sr)
    for bar in range(int(seconds / (4 * beat)) + 1):
        root, chord_third = chords[bar % 4]
        notes = [60 + tonic + root + i for i in (0, chord_third, 7)]
        for b in range(4):
            start = int((bar * 4 + b) * beat * sr)
            if start >= int(seconds * sr):
                break
            for note in notes:
                wave = tone(note, beat, sr) * 0.15
                out[start : start + wave.size] += wave
            if b == 0:
                bass = tone(36 + (tonic + root) % 12, 4 * beat, sr) * 0.3
                out[start : start + bass.size] += bass[: out.size - start]
    return out[: int(seconds * sr)].astype(np.float32)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono])


@pytest.mark.parametrize("bpm", [100.0, 120.0, 150.0])
def test_click_track_tempo_and_beats(bpm):
    result = analyze_blocks(blocks(stereo(click_track(bpm, 20.0))), SR)
    assert result.tempo.bpm == pytest.approx(bpm, rel=0.01)
    assert result.tempo.reason is None and result.tempo.confidence > 0.5
    beats = np.asarray(result.tempo.beats)
    assert np.median(np.diff(beats)) == pytest.approx(60.0 / bpm, rel=0.03)
    # Beats land on the clicks (within one 23 ms hop).
    offsets = (beats + 0.5 * 60 / bpm) % (60.0 / bpm) - 0.5 * 60 / bpm
    assert np.median(np.abs(offsets)) < 0.03


@pytest.mark.parametrize(("tonic", "mode"), [(2, "major"), (9, "minor"), (6, "major")])
def test_cadence_in_a_known_key(tonic, mode):
    result = analyze_blocks(blocks(stereo(cadence(tonic, mode, 20.0))), SR)
    assert result.key.label == f"{NOTE_NAMES[tonic]} {mode}"
    assert (result.key.tonic, result.key.mode) == (NOTE_NAMES[tonic], mode)
    assert result.key.runner_up and result.key.runner_up != result.key.label
    assert 0.0 <= result.key.confidence <= 1.0


def test_silence_gives_nulls_with_reasons():
    result = analyze_blocks(blocks(np.zeros((2, 10 * SR), dtype=np.float32)), SR)
    assert result.duration_s == pytest.approx(10.0)
    assert result.tempo.bpm is None and "silent" in result.tempo.reason
    assert result.key.label is None and "silent" in result.key.reason
    assert result.loudness.lufs is None and result.loudness.peak_dbfs is None
    assert result.loudness.reason


def test_two_second_clip_gives_no_tempo_or_key():
    result = analyze_blocks(blocks(stereo(cadence(0, "major", 2.0))), SR)
    assert result.duration_s == pytest.approx(2.0)
    assert result.tempo.bpm is None and "too short" in result.tempo.reason
    assert result.key.label is None and "too short" in result.key.reason
    assert result.loudness.lufs is not None  # loudness needs only 400 ms


def test_white_noise_has_no_key_and_no_tempo():
    noise = np.random.default_rng(3).standard_normal((2, 15 * SR)).astype(np.float32) * 0.1
    result = analyze_blocks(blocks(noise), SR)
    assert result.key.label is None and result.key.reason
    assert result.tempo.bpm is None and result.tempo.reason
    assert result.loudness.lufs is not None


def test_loudness_equals_pyloudnorm_on_the_whole_signal():
    audio = stereo(cadence(4, "major", 12.0)) * np.array([[1.0], [0.5]], dtype=np.float32)
    result = analyze_blocks(blocks(audio, 7919), SR)
    expected = pyloudnorm.Meter(SR).integrated_loudness(audio.T.astype(np.float64))
    assert result.loudness.lufs == pytest.approx(expected, abs=0.01)
    assert result.loudness.peak_dbfs == pytest.approx(20 * np.log10(np.abs(audio).max()), abs=0.01)


def test_mono_and_six_channel_blocks():
    music = cadence(7, "major", 12.0) + 0.5 * click_track(100.0, 12.0)
    mono = analyze_blocks(blocks(music[None, :]), SR)
    surround = np.stack([music, music, music, music * 4, music, music])  # L R C LFE Ls Rs
    six = analyze_blocks(blocks(surround), SR)
    assert mono.key.label == six.key.label == "G major"
    assert mono.tempo.bpm == pytest.approx(100.0, rel=0.02)
    assert six.tempo.bpm == pytest.approx(100.0, rel=0.02)
    # BS.1770: LFE excluded, surrounds weighted 1.41.
    fronts = pyloudnorm.Meter(SR).integrated_loudness(surround[[0, 1, 2, 4, 5]].T.astype(np.float64))
    assert six.loudness.lufs == pytest.approx(fronts, abs=0.01)


@pytest.mark.parametrize("samplerate", [8000, 96000])
def test_low_and_high_sample_rates(samplerate):
    music = cadence(9, "minor", 12.0, sr=samplerate, bpm=120.0) + 0.5 * click_track(120.0, 12.0, sr=samplerate)
    result = analyze_blocks(blocks(stereo(music)), samplerate)
    assert result.duration_s == pytest.approx(12.0)
    assert result.key.label == "A minor"
    assert result.tempo.bpm == pytest.approx(120.0, rel=0.02)


def test_memory_does_not_grow_with_track_length():
    """Ten minutes of 44.1 kHz stereo (212 MB as float32) analysed within a few MB of Python
    and numpy allocations: the analysis keeps features, never samples."""
    rng = np.random.default_rng(0)
    beat = click_track(120.0, 1.5)[:SR]

    def ten_minutes():
        for _ in range(600):
            yield (np.stack([beat, beat]) + 0.01 * rng.standard_normal((2, SR))).astype(np.float32)

    tracemalloc.start()
    try:
        result = analyze_blocks(ten_minutes(), SR)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.duration_s == pytest.approx(600.0)
    assert peak < 40 * 2**20


def test_nan_samples_are_invalid_audio():
    audio = stereo(cadence(0, "major", 6.0))
    audio[0, 1000] = np.nan
    with pytest.raises(InvalidAudio):
        analyze_blocks(blocks(audio), SR)


def test_stem_aware_mode_uses_rhythm_and_pitched_stems():
    drums = stereo(click_track(120.0, 12.0))
    harmony = stereo(cadence(2, "major", 12.0, bpm=80.0))
    result = analyze_stems({"drums": blocks(drums), "other": blocks(harmony)}, samplerate=SR)
    assert result.tempo.bpm == pytest.approx(120.0, rel=0.02)
    assert result.key.label == "D major"
    assert result.duration_s == pytest.approx(12.0)


def test_result_round_trips_through_json():
    result = analyze_blocks(blocks(stereo(cadence(0, "major", 8.0))), SR)
    again = AnalysisResult.model_validate_json(result.model_dump_json())
    assert again == result
    assert set(result.model_dump()) == {"duration_s", "tempo", "key", "loudness"}


@pytest.mark.parametrize(("samplerate", "channels"), [(8000, 1), (96000, 2), (44100, 6)])
def test_files_at_any_rate_and_layout(tmp_path, samplerate, channels):
    music = cadence(2, "major", 10.0, sr=samplerate, bpm=120.0) + 0.5 * click_track(120.0, 10.0, sr=samplerate)
    path = tmp_path / f"clip_{samplerate}_{channels}.wav"
    soundfile.write(path, np.tile(music[:, None], (1, channels)) * 0.5, samplerate, subtype="PCM_16")
    result = analyze_file(path)
    assert result.duration_s == pytest.approx(10.0, abs=1e-3)
    assert result.key.label == "D major"
    assert result.tempo.bpm == pytest.approx(120.0, rel=0.02)
    assert result.loudness.lufs is not None


def test_file_shorter_than_the_floor(tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, cadence(0, "major", 2.0), SR)
    result = analyze_file(path)
    assert result.duration_s == pytest.approx(2.0, abs=1e-3)
    assert result.tempo.bpm is None and result.key.label is None


@pytest.mark.parametrize(
    ("tonic", "mode", "name"),
    [(10, "major", "Bb major"), (3, "major", "Eb major"), (6, "major", "F# major"), (3, "minor", "Eb minor")],
)
def test_the_key_is_also_spelled_as_musicians_write_it(tonic, mode, name):
    result = analyze_blocks(blocks(stereo(cadence(tonic, mode, 20.0))), SR)
    assert result.key.label == f"{NOTE_NAMES[tonic]} {mode}", "the sharps-only label keeps its meaning"
    assert result.key.name == name and result.key.tonic_name == name.split()[0]
    assert result.key.runner_up_name is not None and result.key.runner_up_name.split()[1] in ("major", "minor")


def test_every_key_has_one_conventional_spelling():
    from musicsep.model.analysis.schema import spelled_key

    majors = [spelled_key(f"{note} major")[0] for note in NOTE_NAMES]
    minors = [spelled_key(f"{note} minor")[0] for note in NOTE_NAMES]
    assert majors == [f"{n} major" for n in ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]
    assert minors == [f"{n} minor" for n in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")]
    assert spelled_key(None) is None


def test_a_confident_tempo_has_no_alternatives_and_a_weak_one_offers_other_readings_with_scores():
    steady = analyze_blocks(blocks(stereo(click_track(120.0, 20.0))), SR)
    assert steady.tempo.confidence >= 0.5 and steady.tempo.alternatives == []
    rng = np.random.default_rng(3)
    buried = click_track(120.0, 20.0) * 0.3 + 0.2 * rng.standard_normal(20 * SR).astype(np.float32)
    tempo = analyze_blocks(blocks(stereo(buried)), SR).tempo
    assert tempo.bpm == pytest.approx(120.0, rel=0.01) and tempo.confidence < 0.5
    readings = {a.relation: a for a in tempo.alternatives}
    assert set(readings) == {"half", "double", "two_thirds", "three_halves"}
    factors = {"half": 0.5, "double": 2.0, "two_thirds": 2 / 3, "three_halves": 1.5}
    for relation, factor in factors.items():
        assert readings[relation].bpm == pytest.approx(tempo.bpm * factor, abs=0.01)
    scores = [a.score for a in tempo.alternatives]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    # Every second click is a click: half the tempo shares the evidence; the off-beats are empty.
    assert readings["half"].score > 0.5 > readings["double"].score


def test_analyze_file_reports_its_progress_up_to_the_last_block(tmp_path):
    path = tmp_path / "clicks.wav"
    soundfile.write(str(path), stereo(click_track(120.0, 8.0)).T, SR)
    seen: list[float] = []
    analyze_file(path, on_progress=seen.append, expected_s=8.0)
    assert seen == sorted(seen) and len(seen) >= 5
    assert 0.0 < seen[0] < 0.3 and seen[-1] == pytest.approx(0.95)
