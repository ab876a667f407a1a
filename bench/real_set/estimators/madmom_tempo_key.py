"""madmom's tempo (RNN beat activations + TempoEstimationProcessor), its DBN beat tracker and its
CNN key recogniser on every excerpt.

Run with the madmom virtualenv's python (README.md: madmom 0.16.1 from PyPI needs numpy < 1.24
and the `collections` aliases that sitecustomize.py there restores). The tempo compared is the
strongest of TempoEstimationProcessor's histogram peaks; the DBN beats' median inter-beat
interval is kept as a cross-check.
Output: ~/.cache/musicsep-realset/estimators/madmom.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import run, sharp_label
from madmom.audio.signal import Signal
from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label
from madmom.features.tempo import TempoEstimationProcessor
from madmom.io.audio import load_wave_file
from scipy.signal import resample_poly

BEATS = RNNBeatProcessor()
TEMPO = TempoEstimationProcessor(fps=100)
DBN = DBNBeatTrackingProcessor(fps=100)
KEY = CNNKeyRecognitionProcessor()


def load(wav: Path) -> Signal:
    """Mono at 44.1 kHz, the rate madmom's models were trained at. madmom resamples through an
    ffmpeg binary, which this machine lacks, so scipy's polyphase resampler does it here."""
    samples, samplerate = load_wave_file(str(wav))
    mono = samples.astype(np.float32) / 32768.0
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if samplerate != 44100:
        divisor = np.gcd(44100, samplerate)
        mono = resample_poly(mono, 44100 // divisor, samplerate // divisor).astype(np.float32)
    return Signal(mono, sample_rate=44100)


def estimate(wav: Path) -> dict:
    signal = load(wav)
    activations = BEATS(signal)
    tempi = TEMPO(activations)
    beats = DBN(activations)
    dbn_bpm = 60.0 / float(np.median(np.diff(beats))) if len(beats) > 2 else None
    prediction = KEY(signal)
    tonic, mode = key_prediction_to_label(prediction).split()
    return {
        "bpm": round(float(tempi[0][0]), 2),
        "bpm_strength": round(float(tempi[0][1]), 3),
        "bpm_second": round(float(tempi[1][0]), 2) if len(tempi) > 1 else None,
        "dbn_bpm": None if dbn_bpm is None else round(dbn_bpm, 2),
        "key": sharp_label(tonic, mode),
        "key_probability": round(float(np.max(prediction)), 3),
    }


if __name__ == "__main__":
    run("madmom", estimate)
