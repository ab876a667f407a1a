"""Essentia's RhythmExtractor2013 (method "multifeature") and KeyExtractor on every excerpt.

Run with the essentia virtualenv's python (README.md). KeyExtractor with its default profile
("bgate") and the "edma" profile are both kept raw; the label compared is the default's.
Output: ~/.cache/musicsep-realset/estimators/essentia.json.
"""

from __future__ import annotations

from pathlib import Path

import essentia
import essentia.standard as es
from _common import run, sharp_label

essentia.log.infoActive = False
essentia.log.warningActive = False


def estimate(wav: Path) -> dict:
    audio = es.MonoLoader(filename=str(wav), sampleRate=44100)()
    bpm, beats, confidence, _, _ = es.RhythmExtractor2013(method="multifeature")(audio)
    key, scale, strength = es.KeyExtractor()(audio)
    edma_key, edma_scale, edma_strength = es.KeyExtractor(profileType="edma")(audio)
    return {
        "bpm": round(float(bpm), 2),
        "bpm_confidence": round(float(confidence), 3),
        "beats": len(beats),
        "key": sharp_label(key, scale),
        "key_strength": round(float(strength), 3),
        "key_edma": sharp_label(edma_key, edma_scale),
        "key_edma_strength": round(float(edma_strength), 3),
    }


if __name__ == "__main__":
    run("essentia", estimate)
