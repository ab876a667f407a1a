"""librosa's beat tracker (`librosa.beat.beat_track`, default settings) on every excerpt.

Run with the librosa virtualenv's python (README.md). Tempo only: librosa has no key estimator.
Output: ~/.cache/musicsep-realset/estimators/librosa.json, {id: {"bpm": float}}.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
from _common import run


def estimate(wav: Path) -> dict:
    mono, samplerate = librosa.load(wav, sr=22050, mono=True)
    tempo, beats = librosa.beat.beat_track(y=mono, sr=samplerate)
    return {"bpm": round(float(np.atleast_1d(tempo)[0]), 2), "beats": len(beats)}


if __name__ == "__main__":
    run("librosa", estimate)
