"""`musicsep analyze` as a person reads its table: the key spelled as on a chart and the tempo,
each with its confidence."""

from __future__ import annotations

import numpy as np
import soundfile

from musicsep.cli import main

SR = 22050


def _bb_major_cadence(seconds: float = 12.0, bpm: float = 100.0) -> np.ndarray:
    """I-IV-V-I in Bb major, a chord struck on every beat, the root in the bass."""
    beat = 60.0 / bpm
    out = np.zeros(int(seconds * SR))
    t = np.arange(int(beat * SR)) / SR
    for index, root in enumerate([0, 5, 7, 0] * int(seconds / (4 * beat) + 1)):
        for b in range(4):
            start = int((index * 4 + b) * beat * SR)
            if start >= out.size:
                break
            for note in (58 + root, 62 + root, 65 + root, 34 + root):
                f0 = 440.0 * 2 ** ((note - 69) / 12)
                wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5)) * np.exp(-3 * t) * 0.1
                out[start : start + wave.size] += wave[: out.size - start]
    return out.astype(np.float32)


def test_the_table_shows_the_spelled_key_and_the_tempo_with_their_confidences(tmp_path, capsys):
    path = tmp_path / "bb.wav"
    soundfile.write(path, _bb_major_cadence(), SR)
    assert main(["analyze", str(path)]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert "bpm (confidence)" in header and "key (confidence)" in header
    assert "Bb major (0." in row and "A# major" not in row
    bpm, confidence = row.split()[3:5]
    assert abs(float(bpm) - 100.0) < 2.0
    assert confidence.startswith("(") and 0.0 <= float(confidence.strip("()")) <= 1.0
