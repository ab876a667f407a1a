"""A band tuned off A440 still gets its key: the tuning read from the spectrum's peaks.

Pitch classes are 100 cents wide; a recording 45 cents flat sits almost half-way to the next
semitone, and reading that tuning a little wrong moves energy into the neighbouring pitch class
(a semitone error in the key, which issue 18's real dev set showed on three recordings).
"""

from __future__ import annotations

import numpy as np
import pytest

from musicsep.model.analysis import analyze_blocks
from musicsep.model.analysis import features as feat
from musicsep.model.analysis.key import tuning_of

SR = 44100
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def tone(midi: float, seconds: float, cents: float) -> np.ndarray:
    """A decaying harmonic tone (five partials) `cents` off equal temperament."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi + cents / 100.0 - 69) / 12)
    partials = [np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < 0.45 * SR]
    return np.sum(partials, axis=0) * np.exp(-2.0 * t)


def cadence(tonic: int, mode: str, cents: float, seconds: float = 15.0) -> np.ndarray:
    """I-IV-V-I (i-iv-V-i) with the root in the bass, every note `cents` off."""
    third = 4 if mode == "major" else 3
    chords = [(0, third), (5, third), (7, 4), (0, third)]
    beat = 0.6
    out = np.zeros(int(seconds * SR) + 4 * SR)
    for bar in range(int(seconds / (4 * beat)) + 1):
        root, chord_third = chords[bar % 4]
        start = int(bar * 4 * beat * SR)
        for note in [60 + tonic + root + i for i in (0, chord_third, 7)] + [36 + (tonic + root) % 12]:
            wave = tone(note, 4 * beat, cents) * 0.15
            out[start : start + wave.size] += wave
    return out[: int(seconds * SR)].astype(np.float32)


def spectrum_of(audio: np.ndarray) -> np.ndarray:
    stream = feat.FeatureStream(SR)
    stream.add(audio)
    return stream.finish().spectrum


def blocks(audio: np.ndarray, size: int = 32768):
    stereo = np.stack([audio, audio])
    for start in range(0, stereo.shape[1], size):
        yield stereo[:, start : start + size]


@pytest.mark.parametrize("cents", [-45.0, -20.0, 0.0, 15.0, 45.0])
def test_the_tuning_is_read_within_a_few_cents(cents):
    music = cadence(2, "major", cents)
    noisy = music + 0.02 * np.random.default_rng(5).standard_normal(music.size).astype(np.float32)
    for audio in (music, noisy):
        estimate = tuning_of(spectrum_of(audio), feat.ANALYSIS_RATE, feat.N_FFT)
        assert estimate * 100.0 == pytest.approx(cents, abs=3.0)


@pytest.mark.parametrize(("tonic", "mode", "cents"), [(4, "major", -45.0), (9, "minor", 45.0), (1, "major", 40.0)])
def test_a_band_tuned_almost_half_a_semitone_off_gets_its_key(tonic, mode, cents):
    result = analyze_blocks(blocks(cadence(tonic, mode, cents)), SR)
    assert result.key.label == f"{NOTE_NAMES[tonic]} {mode}"


def test_a_spectrum_without_peaks_reads_as_in_tune():
    assert tuning_of(np.ones(feat.N_FFT // 2 + 1), feat.ANALYSIS_RATE, feat.N_FFT) == 0.0
