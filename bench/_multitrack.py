"""Synthetic multitrack songs for separation benchmarks: every stem is made on its own.

Real multitracks cannot be shipped or downloaded here, so the dsp bench scores against songs whose
stems are known exactly: a drum kit (kick, snare, hats), a bass line, chords (pad or keys, spread
wide in stereo as producers do) and a voice-like lead (a glottal source shaped by moving vowel
formants, with vibrato, phrases and rests) panned centre. Each song differs in key, tempo, chord
progression, voicing and level balance, chosen from a seed, so the figures are repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SR = 44100
STEMS = ("drums", "bass", "other", "vocals")

# Vowel formants (F1, F2, F3 in Hz) and bandwidths: averaged adult values from the phonetics
# literature (Peterson & Barney), enough for the spectral shape of sung vowels.
VOWELS = {
    "a": ((730, 1090, 2440), (90, 110, 170)),
    "e": ((530, 1840, 2480), (70, 100, 160)),
    "i": ((390, 1990, 2550), (60, 100, 150)),
    "o": ((570, 840, 2410), (70, 90, 160)),
    "u": ((440, 1020, 2240), (60, 90, 150)),
}
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 2, 5, 4), (0, 5, 2, 4))


@dataclass(frozen=True)
class Song:
    """One synthetic song: its stems (name -> float32 (2, n)), the mixture, and how it was made."""

    stems: dict[str, np.ndarray]
    mix: np.ndarray
    description: str


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _env(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Linear attack then exponential decay, `n` samples long."""
    t = np.arange(n) / SR
    return np.minimum(t / max(attack_s, 1e-4), 1.0) * np.exp(-t / decay_s)


def _place(track: np.ndarray, sound: np.ndarray, start: int) -> None:
    stop = min(track.shape[-1], start + sound.shape[-1])
    if start < stop:
        track[..., start:stop] += sound[..., : stop - start]


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan: -1 hard left, 0 centre, +1 hard right."""
    angle = (pan + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)]) * np.sqrt(2)


def drums(rng: np.random.Generator, n: int, beat: int, swing: float) -> np.ndarray:
    """Kick on 1 and 3 (with pickups), snare on 2 and 4, closed hats on eighths, open hat at bar ends."""
    track = np.zeros((2, n))
    kick_n, snare_n, hat_n = int(0.35 * SR), int(0.25 * SR), int(0.08 * SR)
    t = np.arange(kick_n) / SR
    sweep = 45 + 110 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / SR) * np.exp(-t / 0.12)
    kick += 0.3 * rng.standard_normal(kick_n) * np.exp(-t / 0.004)
    ts = np.arange(snare_n) / SR
    body = np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05)
    rattle = signal.sosfilt(
        signal.butter(2, (1500, 9000), "bandpass", fs=SR, output="sos"), rng.standard_normal(snare_n)
    ) * np.exp(-ts / 0.07)
    snare = 0.6 * body + 1.4 * rattle
    hp = signal.butter(4, 7000, "highpass", fs=SR, output="sos")
    beats = n // beat
    for b in range(beats):
        pos = b * beat
        if b % 2 == 0 or (b % 4 == 3 and rng.random() < 0.4):
            _place(track, _pan(kick * rng.uniform(0.85, 1.0), 0.0), pos + (beat // 2 if b % 2 else 0))
        if b % 2 == 1:
            _place(track, _pan(snare * rng.uniform(0.8, 1.0), 0.05), pos)
        for half in range(2):
            decay = 0.2 if (b % 4 == 3 and half == 1) else 0.025
            hat = signal.sosfilt(hp, rng.standard_normal(hat_n if decay < 0.1 else 4 * hat_n))
            hat *= np.exp(-np.arange(hat.size) / SR / decay) * rng.uniform(0.5, 0.8)
            offset = int(half * beat / 2 * (1 + swing))
            _place(track, _pan(hat, 0.35), pos + offset)
    return track


def bass(rng: np.random.Generator, n: int, beat: int, roots: list[int], bar_beats: int) -> np.ndarray:
    """A filtered sawtooth playing each chord's root (and its fifth or octave) on eighths or quarters."""
    track = np.zeros(n)
    step = beat // 2 if rng.random() < 0.5 else beat
    cutoff = rng.uniform(500, 1200)
    lp = signal.butter(2, cutoff, "lowpass", fs=SR, output="sos")
    for start in range(0, n, step):
        root = roots[(start // (beat * bar_beats)) % len(roots)]
        note = root + (7 if rng.random() < 0.2 else 12 if rng.random() < 0.15 else 0)
        length = int(step * rng.uniform(0.7, 0.95))
        f0 = midi_hz(note)
        t = np.arange(length) / SR
        saw = 2 * ((f0 * t + rng.random()) % 1.0) - 1
        tone = signal.sosfilt(lp, saw) * _env(length, 0.005, 0.6)
        tone[-256:] *= np.linspace(1, 0, 256)
        _place(track, tone, start)
    return np.repeat(track[None], 2, axis=0)


def chords(rng: np.random.Generator, n: int, beat: int, chord_notes: list[list[int]], bar_beats: int) -> np.ndarray:
    """Pad (sustained, detuned) or keys (struck on each beat): each chord tone panned apart, wide stereo."""
    track = np.zeros((2, n))
    pad = rng.random() < 0.5
    bar = beat * bar_beats
    strike = bar if pad else beat * (2 if rng.random() < 0.5 else 1)
    harmonics = np.arange(1, 9)
    amps = 1.0 / harmonics ** (1.6 if pad else 1.2)
    for start in range(0, n, strike):
        notes = chord_notes[(start // bar) % len(chord_notes)]
        length = strike + int(0.05 * SR)
        t = np.arange(length) / SR
        env = _env(length, 0.08 if pad else 0.004, 4.0 if pad else 0.5)
        env[-int(0.05 * SR) :] *= np.linspace(1, 0, int(0.05 * SR))
        for v, note in enumerate(notes):
            pan = (-0.8, 0.8, -0.4, 0.4, 0.0)[v % 5] * rng.uniform(0.8, 1.0)
            for detune in (-0.06, 0.06) if pad else (0.0,):
                f0 = midi_hz(note + detune)
                tone = sum(
                    a * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
                    for h, a in zip(harmonics, amps, strict=True)
                    if h * f0 < 12000
                )
                _place(track, _pan(tone * env, pan + detune * 4), start)
    return track


def _formant_gain(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Magnitude response of a cascade of two-pole resonators (one per formant) at `freqs`."""
    gain = np.ones_like(freqs)
    for f, bw in zip(formants, bandwidths, strict=True):
        gain *= f**2 / np.sqrt((f**2 - freqs**2) ** 2 + (bw * freqs) ** 2)
    return gain


def vocals(rng: np.random.Generator, n: int, beat: int, scale_notes: list[int]) -> np.ndarray:
    """A sung lead: glottal source (harmonics falling 12 dB/octave) through vowel formants.

    Synthesised additively so the formants can glide between vowels sample by sample: each
    harmonic's amplitude is the formant filter's gain at that harmonic's frequency. Phrases of two
    bars with rests between; notes of half a beat to two beats; vibrato after each onset.
    """
    f0 = np.zeros(n)
    gate = np.zeros(n)
    vowel_idx = np.zeros(n, dtype=int)
    names = list(VOWELS)
    pos = 0
    while pos < n:
        phrase_end = min(n, pos + 8 * beat)
        note = rng.choice(scale_notes)
        while pos < phrase_end:
            length = int(beat * rng.choice([0.5, 1, 1, 1.5, 2]))
            note = int(np.clip(note + rng.choice([-3, -2, -1, 0, 1, 2, 3]), min(scale_notes), max(scale_notes)))
            note = min(scale_notes, key=lambda s: abs(s - note))
            seg = slice(pos, min(phrase_end, pos + length))
            count = seg.stop - seg.start
            t = np.arange(count) / SR
            vib = 0.4 * np.sin(2 * np.pi * 5.5 * t) * np.clip((t - 0.15) / 0.2, 0, 1)
            f0[seg] = note + vib
            gate[seg] = _env(count, 0.03, 3.0) * np.minimum(1.0, (count - np.arange(count)) / (0.04 * SR))
            vowel_idx[seg] = rng.integers(len(names))
            pos = seg.stop
        pos += int(beat * rng.choice([2, 4]))
    # Glide pitch and vowels over ~40 ms so note changes are legato like a voice.
    smooth = np.ones(int(0.04 * SR)) / int(0.04 * SR)
    # Hold the last pitch through rests (the gate silences them) so glides start from a real note.
    if f0[0] == 0:
        f0[0] = 60.0
    f0 = f0[np.maximum.accumulate(np.where(f0 != 0, np.arange(n), 0))]
    f0 = np.convolve(f0, smooth, mode="same")
    hz = 440.0 * 2.0 ** ((f0 - 69) / 12)
    phase = 2 * np.pi * np.cumsum(hz) / SR
    formants = np.stack([np.array(VOWELS[names[i]][0], float) for i in range(len(names))])[vowel_idx]
    bandwidths = np.stack([np.array(VOWELS[names[i]][1], float) for i in range(len(names))])[vowel_idx]
    formants = np.stack([np.convolve(formants[:, k], smooth, mode="same") for k in range(3)], axis=1)
    out = np.zeros(n)
    for h in range(1, 60):
        fh = h * hz
        live = fh < 10000
        if not live.any():
            break
        amp = _formant_gain(fh, formants.T, bandwidths.T) / h**2 * h  # 1/h^2 source, +6 dB/oct lip radiation
        out += np.where(live, amp * np.sin(h * phase), 0.0)
    breath = signal.sosfilt(signal.butter(2, (2000, 8000), "bandpass", fs=SR, output="sos"), rng.standard_normal(n))
    out = out * gate + 0.02 * np.std(out) * breath * (gate > 0.05)
    return np.repeat(out[None], 2, axis=0)


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)


def make_song(seed: int, seconds: float = 24.0) -> Song:
    """One song from a seed: key, mode, tempo, progression, voicing and stem balance all drawn from it."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    tempo = float(rng.uniform(84, 140))
    beat = int(round(60 / tempo * SR))
    key = int(rng.integers(0, 12))
    minor = bool(rng.random() < 0.4)
    scale = MINOR if minor else MAJOR
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    degree_note = lambda d, octave: 12 * octave + key + scale[d % 7] + 12 * (d // 7)  # noqa: E731
    roots = [degree_note(d, 2) + 12 * (key < 4) for d in prog]
    chord_notes = [
        [degree_note(d + k, 4) for k in (0, 2, 4)] + ([degree_note(d, 5)] if rng.random() < 0.5 else []) for d in prog
    ]
    low_voice = rng.random() < 0.4
    base = 4 if low_voice else 5
    scale_notes = sorted(degree_note(d, base) for d in range(-2, 9))
    stems = {
        "drums": drums(rng, n, beat, swing=float(rng.uniform(0, 0.2))),
        "bass": bass(rng, n, beat, roots, 4),
        "other": chords(rng, n, beat, chord_notes, 4),
        "vocals": vocals(rng, n, beat, scale_notes),
    }
    levels = {"drums": -17.0, "bass": -19.0, "other": -20.0, "vocals": -17.0}
    for name, x in stems.items():
        stems[name] = (x * 10 ** ((levels[name] + rng.uniform(-2, 2) - _rms_db(x)) / 20)).astype(np.float32)
    mix = sum(stems.values())
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:
        stems = {k: (v * (0.98 / peak)).astype(np.float32) for k, v in stems.items()}
        mix = sum(stems.values())
    note_names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    desc = f"{note_names[key]} {'minor' if minor else 'major'}, {tempo:.0f} bpm, {'low' if low_voice else 'high'} voice"
    return Song(stems=stems, mix=mix.astype(np.float32), description=desc)
