"""Tempo as a listener expects it: music without drums still has a beat, noise has none."""

from __future__ import annotations

import numpy as np
import pytest

from musicsep.model.analysis import analyze_blocks

SR = 22050
SCALE = (0, 2, 4, 5, 7, 9, 11)


def _piano(f0: float, seconds: float) -> np.ndarray:
    """A struck string: partials falling off by 0.6 each, an exponential decay."""
    t = np.arange(int(seconds * SR)) / SR
    partials = sum(0.6 ** (k - 1) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8) if k * f0 < 0.45 * SR)
    return partials * np.exp(-1.5 * t) * np.minimum(1.0, t / 0.005)


def piano_piece(bpm: float, seconds: float, seed: int = 0) -> np.ndarray:
    """No drums: a chord struck once a bar (I-vi-IV-V in C, left hand) and a right-hand melody of
    mixed note values (quarters, halves, dotted quarters, eighths), so not every beat has an onset."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    out = np.zeros(int(seconds * SR) + SR)

    def place(wave: np.ndarray, at_s: float, gain: float) -> None:
        start = int(at_s * SR)
        if start < out.size:
            out[start : start + wave.size] += gain * wave[: out.size - start]

    for bar in range(int(seconds / (4 * beat)) + 1):
        degree = (0, 5, 3, 4)[bar % 4]
        for step in (0, 2, 4):
            note = 48 + SCALE[(degree + step) % 7] + 12 * ((degree + step) // 7)
            place(_piano(440.0 * 2 ** ((note - 69) / 12), 4 * beat), bar * 4 * beat, 0.12)
        position = 0.0
        while position < 4.0:
            length = min(4.0 - position, rng.choice((1.0, 1.0, 2.0, 1.5, 0.5)) if position % 1 == 0 else 0.5)
            note = 72 + SCALE[int(rng.integers(7))]
            place(_piano(440.0 * 2 ** ((note - 69) / 12), length * beat), (bar * 4 + position) * beat, 0.15)
            position += length
    out = out[: int(seconds * SR)]
    return (out / np.abs(out).max() * 0.8).astype(np.float32)


def _analyse(mono: np.ndarray):
    return analyze_blocks([mono[None, :]], SR)


@pytest.mark.parametrize("bpm", [72.0, 96.0, 126.0])
def test_a_drumless_piano_piece_gets_its_tempo(bpm):
    tempo = _analyse(piano_piece(bpm, 30.0, seed=int(bpm))).tempo
    assert tempo.bpm is not None and tempo.reason is None
    ratio = tempo.bpm / bpm
    assert min(abs(ratio - k) for k in (1.0, 2.0, 0.5)) < 0.04 * max(ratio, 1.0)
    assert 0.0 < tempo.confidence <= 1.0


def test_a_short_clip_under_the_floor_has_no_tempo_and_says_why():
    tempo = _analyse(piano_piece(100.0, 2.0)).tempo
    assert tempo.bpm is None and "too short" in tempo.reason and "2.5 s" in tempo.reason


def test_a_three_second_loop_gets_its_tempo():
    """A 3 s sample (a loop, a preview) is long enough for a few beats: above the 2.5 s floor."""
    beat = 60.0 / 120.0
    t = np.arange(int(0.08 * SR)) / SR
    hit = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.02)
    loop = np.zeros(3 * SR)
    for k in range(6):
        start = int(k * beat * SR)
        loop[start : start + hit.size] += hit[: loop.size - start]
    chord = sum(np.sin(2 * np.pi * f * np.arange(loop.size) / SR) for f in (261.6, 329.6, 392.0)) * 0.05
    tempo = _analyse((0.5 * loop + chord).astype(np.float32)).tempo
    assert tempo.bpm == pytest.approx(120.0, rel=0.04)


@pytest.mark.parametrize("colour", ["white", "red"])
def test_noise_has_no_tempo(colour):
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(20 * SR)
    if colour == "red":
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(2205) / 2205, mode="same")
    noise = (0.3 * noise / np.abs(noise).max()).astype(np.float32)
    result = _analyse(noise)
    assert result.tempo.bpm is None and result.tempo.reason
    assert result.key.label is None
