"""Labelled synthetic music for the analysis evaluation (bench/analysis_eval.py).

Each clip is rendered from a `ClipSpec` (key, tempo, timbre, progression, accompaniment, drums,
swing, detuning, noise) part by part, so the evaluation also gets exact stems (drums, bass,
other, vocals) for the stem-aware mode. Everything is seeded: the same spec renders the same
samples. Nothing is written to the repository.

The labels follow the usual annotation conventions: the tempo is the quarter-note rate of a 4/4
bar; the key is the one the progression is written in (minor keys borrow the harmonic-minor
dominant where the progression says V).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
CHORDS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "dom7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
}
# Progressions as (root in semitones above the tonic, chord quality), one chord per bar.
PROGRESSIONS = {
    "major": {
        "I-IV-V-I": ((0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")),
        "I-V-vi-IV": ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
        "I-vi-ii-V7": ((0, "maj"), (9, "min"), (2, "min"), (7, "dom7")),
        "ii7-V7-Imaj7-Imaj7": ((2, "min7"), (7, "dom7"), (0, "maj7"), (0, "maj7")),
        "I-iii-IV-V": ((0, "maj"), (4, "min"), (5, "maj"), (7, "maj")),
        "I-IV-vi-V": ((0, "maj"), (5, "maj"), (9, "min"), (7, "maj")),
    },
    "minor": {
        "i-iv-V-i": ((0, "min"), (5, "min"), (7, "maj"), (0, "min")),
        "i-VI-III-VII": ((0, "min"), (8, "maj"), (3, "maj"), (10, "maj")),
        "i-VII-VI-V": ((0, "min"), (10, "maj"), (8, "maj"), (7, "maj")),
        "i-iv-v-i": ((0, "min"), (5, "min"), (7, "min"), (0, "min")),
        "i-VI-iv-V7": ((0, "min"), (8, "maj"), (5, "min"), (7, "dom7")),
        "iio-V7-i-i": ((2, "dim"), (7, "dom7"), (0, "min"), (0, "min")),
    },
}
TIMBRES = ("organ", "bright", "pluck", "pad", "piano")
COMPING = ("sustain", "quarters", "arpeggio8", "offbeat", "syncopated")
BASS_LINES = ("half", "quarters", "root_fifth8")
DRUMS = ("rock", "four_floor", "sixteenths", "swing", "breakbeat", "kick_on_bar", None, None, None)
STEMS = ("drums", "bass", "other", "vocals")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides one clip; the labels are `tonic`, `mode` and `bpm`."""

    index: int
    tonic: int
    mode: str
    bpm: float
    timbre: str
    progression: str
    comping: str
    bass_line: str
    drums: str | None
    swing: bool
    detune_cents: float
    noise_snr_db: float | None
    seed: int

    @property
    def key_label(self) -> str:
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"


def make_specs(count: int = 96, seed: int = 2024) -> list[ClipSpec]:
    """`count` clips; every 24 in a row cover all 24 keys, the other factors rotate or are drawn."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(count):
        mode = "major" if (i // 12) % 2 == 0 else "minor"
        tonic = (i * 7 + 5 * (i // 24)) % 12
        drums = DRUMS[(i // 2 + i // 24) % len(DRUMS)]
        comping = COMPING[(i + i // 5) % len(COMPING)]
        bass_line = BASS_LINES[(i // 3) % len(BASS_LINES)]
        if drums is None and comping not in ("quarters", "arpeggio8") and bass_line == "half":
            bass_line = "quarters"  # without drums someone must play every beat
        swing = drums == "swing" or (drums is None and i % 7 == 0)
        stratum = (i * 37) % count
        bpm = float(60.0 + 120.0 * (stratum + rng.random()) / count)
        detune = float(rng.uniform(10.0, 30.0) * rng.choice((-1, 1))) if i % 3 == 1 else 0.0
        noise = float(rng.uniform(8.0, 20.0)) if i % 4 == 2 else None
        specs.append(
            ClipSpec(
                index=i,
                tonic=tonic,
                mode=mode,
                bpm=round(bpm, 2),
                timbre=TIMBRES[i % len(TIMBRES)],
                progression=tuple(PROGRESSIONS[mode])[(i // 2) % len(PROGRESSIONS[mode])],
                comping=comping,
                bass_line=bass_line,
                drums=drums,
                swing=swing,
                detune_cents=round(detune, 1),
                noise_snr_db=None if noise is None else round(noise, 1),
                seed=int(rng.integers(1 << 31)),
            )
        )
    return specs


def _midi_hz(midi: float, detune_cents: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0 + detune_cents / 1200.0)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n, max(1, int(attack * sr))), min(n, max(1, int(release * sr)))
    env[:a] = np.linspace(0.0, 1.0, a)
    env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _tone(timbre: str, f0: float, dur: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note: additive partials below Nyquist, each timbre its own spectrum and envelope."""
    n = max(1, int(dur * sr))
    t = np.arange(n) / sr
    nyquist = 0.45 * sr
    if timbre == "organ":
        ks, amps, decay, attack, release = np.arange(1, 7), 1.0 / np.arange(1, 7), 0.0, 0.01, 0.05
    elif timbre == "bright":
        ks, amps, decay, attack, release = np.arange(1, 17), 1.0 / np.arange(1, 17), 0.6, 0.005, 0.03
    elif timbre == "pluck":
        ks = np.arange(1, 11)
        amps, decay, attack, release = 1.0 / ks**1.2, None, 0.002, 0.02
    elif timbre == "pad":
        out = sum(_pad_voice(f0 * 2 ** (c / 1200.0), t, nyquist) for c in (-7.0, 0.0, 7.0))
        return out * _envelope(n, sr, 0.25, 0.3) / 3.0
    elif timbre == "piano":
        ks = np.arange(1, 13)
        freqs = ks * f0 * np.sqrt(1.0 + 3e-4 * ks**2)
        amps = (1.0 / ks) * (0.6 + 0.4 * np.abs(np.sin(np.pi * ks * 0.12)))
        rates = 1.5 + 0.35 * ks
        keep = freqs < nyquist
        env = np.exp(-np.outer(rates[keep], t))
        phases = rng.uniform(0, 2 * np.pi, keep.sum())[:, None]
        wave = (amps[keep, None] * env * np.sin(2 * np.pi * freqs[keep, None] * t + phases)).sum(0)
        return wave * _envelope(n, sr, 0.003, 0.05)
    elif timbre == "bass":
        ks, amps, decay, attack, release = np.arange(1, 5), np.array([1.0, 0.5, 0.3, 0.15]), 1.2, 0.005, 0.04
    else:
        raise ValueError(timbre)
    freqs = ks * f0
    keep = freqs < nyquist
    if decay is None:  # pluck: higher partials die faster
        env = np.exp(-np.outer(2.5 + 1.8 * ks[keep], t))
    else:
        env = np.exp(-decay * t)[None, :]
    phases = rng.uniform(0, 2 * np.pi, keep.sum())[:, None]
    wave = (amps[keep, None] * env * np.sin(2 * np.pi * freqs[keep, None] * t + phases)).sum(0)
    return wave * _envelope(n, sr, attack, release)


def _pad_voice(f0: float, t: np.ndarray, nyquist: float) -> np.ndarray:
    ks = np.arange(1, 6)
    ks = ks[ks * f0 < nyquist]
    return (np.sin(2 * np.pi * np.outer(ks * f0, t)) / ks[:, None] ** 1.5).sum(0)


def _drum_kit(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.4 * sr)) / sr
    sweep = 45.0 + 105.0 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / 0.12)
    kick[: int(0.002 * sr)] += rng.uniform(-0.5, 0.5, int(0.002 * sr))
    noise = rng.standard_normal(t.size)
    snare = 0.5 * lfilter([1, -0.9], [1], noise) * np.exp(-t / 0.07) + 0.6 * np.sin(2 * np.pi * 190 * t) * np.exp(
        -t / 0.05
    )
    hat_noise = lfilter([1, -2, 1], [1], rng.standard_normal(t.size)) / 4.0
    return {
        "kick": kick,
        "snare": snare * 0.8,
        "hat": hat_noise * np.exp(-t / 0.025) * 0.35,
        "open_hat": hat_noise * np.exp(-t / 0.15) * 0.25,
    }


def _drum_hits(pattern: str, beats: int, swing: bool) -> list[tuple[float, str, float]]:
    """(time in beats, drum, velocity) for a 4/4 pattern."""
    off = 2.0 / 3.0 if swing else 0.5
    hits: list[tuple[float, str, float]] = []
    for b in range(beats):
        pos = b % 4
        if pattern == "rock":
            if pos in (0, 2):
                hits.append((b, "kick", 1.0))
            else:
                hits.append((b, "snare", 1.0))
            hits += [(b, "hat", 0.9), (b + off, "hat", 0.6)]
        elif pattern == "four_floor":
            hits.append((b, "kick", 1.0))
            if pos in (1, 3):
                hits.append((b, "snare", 0.9))
            hits.append((b + 0.5, "open_hat", 0.8))
        elif pattern == "sixteenths":
            if pos in (0, 2):
                hits.append((b, "kick", 1.0))
            if pos == 2:
                hits.append((b + 0.5, "kick", 0.7))
            if pos in (1, 3):
                hits.append((b, "snare", 1.0))
            hits += [(b + q / 4.0, "hat", 0.8 if q == 0 else 0.5) for q in range(4)]
        elif pattern == "swing":
            if pos in (0, 2):
                hits.append((b, "kick", 0.8))
            if pos in (1, 3):
                hits.append((b, "snare", 0.8))
            hits += [(b, "hat", 0.9)]
            if pos in (1, 3):
                hits.append((b + off, "hat", 0.6))
        elif pattern == "breakbeat":
            if pos == 0:
                hits.append((b, "kick", 1.0))
            if pos == 1:
                hits.append((b + 0.5, "kick", 0.8))
            if pos in (1, 3):
                hits.append((b, "snare", 1.0))
            hits += [(b, "hat", 0.8), (b + off, "hat", 0.5)]
        elif pattern == "kick_on_bar":
            if pos == 0:
                hits.append((b, "kick", 1.0))
            if pos in (1, 3):
                hits.append((b, "snare", 0.9))
            hits.append((b, "hat", 0.7))
        else:
            raise ValueError(pattern)
    return hits


def _voicing(root_pc: int, quality: str, low: int) -> list[int]:
    """Chord notes as MIDI numbers, closest position at or above `low`."""
    root = low + (root_pc - low) % 12
    notes = [root + i for i in CHORDS[quality]]
    return [n - 12 if n > low + 14 else n for n in notes]


def render(spec: ClipSpec, samplerate: int = 22050, seconds: float = 30.0) -> dict[str, np.ndarray]:
    """Stems `drums`, `bass`, `other` (chords and any noise), `vocals` (lead) and their `mix`,
    each float32 shaped (2, n); the mix peaks at 0.9."""
    rng = np.random.default_rng(spec.seed)
    sr = samplerate
    n = int(seconds * sr)
    beat_s = 60.0 / spec.bpm
    beats = int(np.ceil(seconds / beat_s)) + 1
    off = 2.0 / 3.0 if spec.swing else 0.5
    buf = {name: np.zeros(n + 4 * sr) for name in STEMS}

    def place(stem: str, wave: np.ndarray, at_beats: float, gain: float) -> None:
        start = int(np.rint(at_beats * beat_s * sr))
        if start < n:
            buf[stem][start : start + wave.size] += gain * wave[: buf[stem].size - start]

    def hz(midi: float) -> float:
        return _midi_hz(midi, spec.detune_cents)

    chords = PROGRESSIONS[spec.mode][spec.progression]
    scale = SCALES[spec.mode]
    melody_pitch = 67 + spec.tonic % 12
    for bar in range(beats // 4 + 1):
        root, quality = chords[bar % len(chords)]
        chord_pcs = [(spec.tonic + root + i) % 12 for i in CHORDS[quality]]
        voicing = _voicing((spec.tonic + root) % 12, quality, 52)
        b0 = bar * 4
        # Chords ("other")
        if spec.comping == "sustain":
            for m in voicing:
                place("other", _tone(spec.timbre, hz(m), 4 * beat_s + 0.1, sr, rng), b0, 0.25)
        elif spec.comping == "quarters":
            for b in range(4):
                for m in voicing:
                    wave = _tone(spec.timbre, hz(m), 0.9 * beat_s, sr, rng)
                    place("other", wave, b0 + b, 0.25 if b == 0 else 0.18)
        elif spec.comping == "arpeggio8":
            seq = voicing + [voicing[1] + 12 if len(voicing) > 1 else voicing[0] + 12] + voicing[::-1]
            for e in range(8):
                at = b0 + e // 2 + (off if e % 2 else 0.0)
                wave = _tone(spec.timbre, hz(seq[e % len(seq)]), 0.5 * beat_s, sr, rng)
                place("other", wave, at, 0.32 if e % 2 == 0 else 0.22)
        elif spec.comping == "offbeat":
            for b in range(4):
                for m in voicing:
                    place("other", _tone(spec.timbre, hz(m), 0.35 * beat_s, sr, rng), b0 + b + off, 0.2)
        elif spec.comping == "syncopated":
            for at, length in ((0.0, 1.5), (1.5, 1.5), (3.0, 1.0)):
                for m in voicing:
                    place("other", _tone(spec.timbre, hz(m), length * beat_s, sr, rng), b0 + at, 0.22)
        # Bass
        bass_root = 36 + (spec.tonic + root - 36) % 12
        fifth = bass_root + 7
        if spec.bass_line == "half":
            steps = [(0.0, bass_root, 2.0), (2.0, bass_root, 2.0)]
        elif spec.bass_line == "quarters":
            steps = [(float(b), bass_root if b % 2 == 0 else fifth, 1.0) for b in range(4)]
        else:
            steps = [(b + (off if e else 0.0), bass_root if not e else fifth, 0.5) for b in range(4) for e in (0, 1)]
        for at, m, length in steps:
            wave = _tone("bass", hz(m), 0.95 * length * beat_s, sr, rng)
            place("bass", wave, b0 + at, 0.55 if at % 1 == 0 else 0.35)
        # Lead ("vocals"): chord tones on beats, scale steps between, a rest now and then; where
        # the bar's chord is the tonic chord the phrase lands on the tonic, held for two beats.
        tonic_bar = root == 0
        for b in range(4):
            if tonic_bar and b < 2:
                if b == 0:
                    melody_pitch = 60 + (spec.tonic - 60) % 12 + (12 if spec.tonic < 5 else 0)
                    wave = _tone(spec.timbre, hz(melody_pitch), 1.9 * beat_s, sr, rng)
                    place("vocals", wave, b0, 0.24)
                continue
            if rng.random() < 0.15:
                continue
            target = min((m for m in range(60, 84) if m % 12 in chord_pcs), key=lambda m: abs(m - melody_pitch))
            melody_pitch = target
            eighths = rng.random() < 0.4
            length = 0.5 if eighths else 1.0
            place("vocals", _tone(spec.timbre, hz(target), 0.9 * length * beat_s, sr, rng), b0 + b, 0.22)
            if eighths:
                step = int(rng.choice((-1, 1)))
                degree = min(range(7), key=lambda d: abs((spec.tonic + scale[d]) % 12 - target % 12))
                neighbour_pc = (spec.tonic + scale[(degree + step) % 7]) % 12
                neighbour = target + ((neighbour_pc - target % 12 + 6) % 12 - 6)
                wave = _tone(spec.timbre, hz(neighbour), 0.45 * beat_s, sr, rng)
                place("vocals", wave, b0 + b + off, 0.16)
    if spec.drums:
        kit = _drum_kit(sr, rng)
        for at, drum, velocity in _drum_hits(spec.drums, beats, spec.swing):
            place("drums", kit[drum], at, 0.5 * velocity * rng.uniform(0.9, 1.0))
    if spec.noise_snr_db is not None:
        music = sum(buf[name][:n] for name in STEMS)
        noise = rng.standard_normal(n)
        if spec.index % 2:
            noise = lfilter([1.0], [1.0, -0.98], noise)  # reddish noise for every other clip
        gain = np.sqrt(np.mean(music**2) / np.mean(noise**2) / 10 ** (spec.noise_snr_db / 10))
        buf["other"][:n] += gain * noise
    pans = {"drums": 0.5, "bass": 0.5, "other": 0.35, "vocals": 0.6}
    stems = {name: np.stack([buf[name][:n] * (1 - pans[name]), buf[name][:n] * pans[name]]) * 2.0 for name in STEMS}
    mix = sum(stems.values())
    scale_to = 0.9 / max(1e-9, float(np.max(np.abs(mix))))
    out = {name: (stem * scale_to).astype(np.float32) for name, stem in stems.items()}
    out["mix"] = (mix * scale_to).astype(np.float32)
    return out
