"""The mode comes from the third: a tonic and fifth heard loudly and a third heard softly (power
chords under a voice) are read as the key of that third, not as its parallel or relative key."""

from __future__ import annotations

import numpy as np
import pytest

from musicsep.model.analysis.key import estimate_key, thirds

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def power_chords_with_a_third(tonic: int, mode: str, third_level: float, segments: int = 40) -> np.ndarray:
    """(12, segments) chroma: root + fifth on every segment (the tonic's for three segments in
    four, the dominant's for the fourth) and the tonic's third, softer, where the tonic sounds."""
    third = 3 if mode == "minor" else 4
    chroma = np.full((12, segments), 0.05)
    for index in range(segments):
        root = tonic if index % 4 != 3 else (tonic + 7) % 12
        chroma[[root, (root + 7) % 12], index] += 1.0
        if root == tonic:
            chroma[(tonic + third) % 12, index] += third_level
    return chroma


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("third_level", [0.3, 0.6])
def test_a_soft_third_over_power_chords_names_the_mode(mode, third_level):
    for tonic in range(12):
        estimate = estimate_key(power_chords_with_a_third(tonic, mode, third_level))
        assert estimate.label == f"{NOTE_NAMES[tonic]} {mode}"


def test_the_third_favours_its_own_mode_and_nothing_else():
    total = np.zeros(12)
    total[[0, 7]] = 1.0
    total[3] = 0.5  # C, G and Eb: C minor's third, not C major's
    scores = thirds(total)
    assert scores[12] > 0 > scores[0]  # C minor above, C major below
    assert scores[12] == pytest.approx(-scores[0])
