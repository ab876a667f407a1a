"""Shared by the estimator scripts: which WAVs to read and where the raw outputs go.

Each script runs inside its own virtualenv outside the project (README.md), so this module uses
the standard library only. The WAVs are the excerpts `bench/real_set/materialise.py` cut into
~/.cache/musicsep-realset/audio/; the raw outputs go to ~/.cache/musicsep-realset/estimators/.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

CACHE = Path.home() / ".cache" / "musicsep-realset"
AUDIO = CACHE / "audio"
OUTPUT = CACHE / "estimators"
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def run(name: str, estimate: Callable[[Path], dict]) -> None:
    """Estimate every excerpt (or the ids given on the command line) into `<name>.json`, keeping
    the results for files not re-run. Each result is merged into the file as soon as it exists
    (re-read, update, write), so an interrupted run keeps what it did and two runs on disjoint ids
    (two processes on two cores) both land."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out_path = OUTPUT / f"{name}.json"
    wanted = set(sys.argv[1:])
    for wav in sorted(AUDIO.glob("*.wav")):
        if wanted and wav.stem not in wanted:
            continue
        start = time.perf_counter()
        try:
            result = estimate(wav)
        except Exception as error:  # an estimator's failure on one file is a result, not a stop
            result = {"error": f"{type(error).__name__}: {error}"}
        result["seconds"] = round(time.perf_counter() - start, 2)
        print(wav.stem, result, flush=True)
        merged = json.loads(out_path.read_text()) if out_path.exists() else {}
        merged[wav.stem] = result
        out_path.write_text(json.dumps(merged, indent=1, sort_keys=True))


def sharp_label(tonic: str, mode: str) -> str:
    """'Eb', 'minor' -> 'D# minor': one spelling, so labels from different tools compare."""
    flats = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}
    tonic = flats.get(tonic, tonic)
    assert tonic in PITCH_CLASSES, tonic
    return f"{tonic} {mode.lower()}"
