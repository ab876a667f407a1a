"""Key: tonic and mode from a tuning-corrected chroma correlated with 24 rotated key profiles.

The chroma is computed per 0.5 s segment from the segment's summed magnitude spectrum (see
features.py); tuning is estimated from the whole track's spectrum (`tuning_of`: where its peaks
sit between the equal-tempered semitones), so a band tuned 30 cents sharp still lands on the
right pitch classes. Before folding into pitch classes each
segment's spectrum is whitened (its running median over frequency subtracted, as HPCP does:
what stays is the partials standing above the timbre's envelope and the noise floor) and
log-compressed (log(1 + 100 x), Mueller & Ewert's CLP chroma), so a loud low note or one
bright instrument does not outweigh the rest of the harmony; on the first real dev set (29 key
items) this took the key score from 0.66 to 0.77 with the same synthetic score. The folding
weighs registers by a Gaussian over octaves centred on A4 (440 Hz, two octaves wide), where
chords and accompaniment sit, rather than librosa's default A5: on the real dev set (86 key
items) the centres A4 and A4 + 1/2 octave beat A5 on both of its halves with either tuning
estimate (averaged over widths of 1.5 to 3 octaves).

Several published profile families are kept side by side because which one works best is a
measurement, not a belief: bench/analysis_eval.py scores each, and `DEFAULT_PROFILE` is the one
that did best on the real dev set with the chord evidence below (Bellman's, after Budge's counts
of chords in common-practice music; EDMA, fitted to electronic dance music, was the worst
there). docs/analysis.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from musicsep.model.analysis.schema import PITCH_CLASSES

# (major, minor) weights, index 0 = tonic. Sources: Krumhansl & Kessler 1982; Temperley 1999
# ("What's key for key?"); Temperley 2007 (Kostka-Payne corpus); Albrecht & Shanahan 2013;
# Bellman 2005 (after Budge 1943); Aarden 2003 (Essen folksongs); Sha'ath 2011 (KeyFinder);
# Faraldo et al. 2016 (EDMA, as in Essentia's Key algorithm).
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "krumhansl_kessler": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (
        (5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
        (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0),
    ),
    "temperley_kostka_payne": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "albrecht_shanahan": (
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
    "bellman_budge": (
        (16.80, 0.86, 12.95, 1.41, 13.49, 11.93, 1.25, 20.28, 1.80, 8.04, 0.62, 10.57),
        (18.16, 0.69, 12.99, 13.34, 1.07, 11.15, 1.38, 21.07, 7.49, 1.53, 0.92, 10.21),
    ),
    "aarden_essen": (
        (
            17.7661,
            0.145624,
            14.9265,
            0.160186,
            19.8049,
            11.3587,
            0.291248,
            22.062,
            0.145624,
            8.15494,
            0.232998,
            4.95122,
        ),
        (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186, 7.37619, 1.75623),
    ),
    "shaath": (
        (6.6, 2.0, 3.5, 2.3, 4.6, 4.0, 2.5, 5.2, 2.4, 3.7, 2.3, 3.4),
        (6.5, 2.7, 3.5, 5.4, 2.6, 3.5, 2.5, 5.2, 4.0, 2.7, 4.3, 3.2),
    ),
    "edma": (
        (1.00, 0.29, 0.50, 0.40, 0.60, 0.56, 0.32, 0.80, 0.31, 0.45, 0.42, 0.39),
        (1.00, 0.31, 0.44, 0.58, 0.33, 0.49, 0.29, 0.78, 0.43, 0.29, 0.53, 0.32),
    ),
}
DEFAULT_PROFILE = "bellman_budge"
MODES = ("major", "minor")
# Below this tonalness (see `tonalness`) the spectrum has no pitch peaks: noise of any colour
# measures under 0.005, the synthetic evaluation music (noisy clips included) over 0.12.
MIN_TONALNESS = 0.04
# Weight of the cadence evidence (share of chord changes that go dominant -> tonic) added to the
# profile correlation: 1 scored best on the first real dev set (29 key items) and the synthetic
# set alike with the whitened chroma (0: 0.755 / 0.900, 1: 0.772 / 0.938, 2: 0.772 / 0.932).
CADENCE_WEIGHT = 1.0
# Weight of the tonic-chord share (segments whose best triad is the key's tonic triad). MIREX
# scores on the real dev set (86 key items) / synthetic set, cadence weight 1, Bellman-Budge:
# 0 -> 0.721 / 0.900, 0.5 -> 0.735 / 0.939, 1 -> 0.758 / 0.960 (Albrecht-Shanahan: 0.693 /
# 0.938, 0.700 / 0.960, 0.705 / 0.960). docs/analysis.md has the whole grid.
TONIC_CHORD_WEIGHT = 1.0
# Weight of the third (`thirds`): real dev set (86 key items, halves A / B) and synthetic MIREX
# with the A4 register and this tuning: 0 -> 0.784 (0.830 / 0.730) / 0.946, 0.25 -> 0.785 (0.830 /
# 0.733) / 0.946, 0.5 and 0.75 -> 0.817 (0.830 / 0.802) / 0.939, 1 -> 0.788 (0.820 / 0.753) /
# 0.942. 0.5-0.75 also kept or raised both halves at centres A3 + 1/2 and A4 + 1/2 and with
# librosa's tuning at A4 (at the old A5 with librosa's tuning it cost half A 0.01-0.03); 0.5 is
# the end of the plateau away from the fall at 1.
THIRD_WEIGHT = 0.5
# Whitening: the running median over this many FFT bins (167 Hz at 11,025 Hz / 2048) is the
# envelope a segment's spectrum is measured above (the same width as `tonalness` uses).
WHITENING_BINS = 31
# Log compression of the whitened spectrum: log(1 + COMPRESSION * x / max), Mueller's gamma.
COMPRESSION = 100.0
# Register weighting of the chroma filterbank (librosa's ctroct / octwidth, octaves above A0 =
# 27.5 Hz): a Gaussian centred on A4 (440 Hz), two octaves wide. Real dev set (86 key items,
# halves A / B by id hash) and synthetic MIREX, this tuning estimate: centre A5 (librosa's
# default) 0.702 (0.798 / 0.593) / 0.953, A4 0.784 (0.830 / 0.730) / 0.946, A3 + half an octave
# 0.764 (0.798 / 0.725) / 0.923; widths 1.5 and 3 octaves scored below 2 at A4.
REGISTER_CENTRE_OCTAVE = 4.0
REGISTER_WIDTH_OCTAVES = 2.0
# Tuning: peaks of the summed spectrum from TUNING_FMIN_HZ (below, one 5.4 Hz bin is more than
# half a semitone) to TUNING_FMAX_HZ that stand TUNING_PEAK_RATIO above the running median.
TUNING_FMIN_HZ = 200.0
TUNING_FMAX_HZ = 2500.0
TUNING_PEAK_RATIO = 2.0


@dataclass(frozen=True)
class KeyEstimate:
    tonic: str | None
    mode: str | None
    confidence: float | None
    runner_up: str | None
    reason: str | None = None

    @property
    def label(self) -> str | None:
        return None if self.tonic is None else f"{self.tonic} {self.mode}"


def _zscored(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=-1, keepdims=True)
    return rows / rows.std(axis=-1, keepdims=True)


def _key_matrix(profile: str) -> np.ndarray:
    """(24, 12) z-scored templates: rows 0-11 major keys C..B, rows 12-23 minor keys C..B."""
    rows = [np.roll(np.asarray(w, dtype=np.float64), t) for w in PROFILES[profile] for t in range(12)]
    return _zscored(np.asarray(rows))


def _triad_matrix() -> np.ndarray:
    """(24, 12) z-scored triads, in the same order as the keys: C..B major, C..B minor."""
    rows = np.zeros((24, 12))
    for quality, intervals in enumerate(((0, 4, 7), (0, 3, 7))):
        for root in range(12):
            rows[quality * 12 + root, [(root + i) % 12 for i in intervals]] = 1.0
    return _zscored(rows)


def tuning_of(spectrum: np.ndarray, samplerate: int, n_fft: int) -> float:
    """The track's deviation from A440 equal temperament, in fractions of a semitone (-0.5..0.5):
    the circular mean, weighted by how far each stands above the running median, of where the
    summed spectrum's peaks sit between two semitones (each peak's frequency refined by a parabola
    through its log magnitude and its two neighbours, as for a Hann window's main lobe).

    librosa's estimate_tuning takes the histogram mode of unweighted peak deviations; on one
    long-term spectrum that has few peaks it missed by up to 16 cents on the synthetic set
    (known detunes up to 30 cents) and read three real recordings about half a semitone off,
    a semitone error in their key; this is within 3.3 cents of every synthetic detune."""
    from scipy.ndimage import median_filter

    top = min(spectrum.size, int(TUNING_FMAX_HZ * n_fft / samplerate) + 2)
    magnitude = np.asarray(spectrum[:top], dtype=np.float64)
    envelope = median_filter(magnitude, size=WHITENING_BINS, mode="nearest")
    log = np.log(np.maximum(magnitude, 1e-12))
    bins = np.arange(max(1, int(TUNING_FMIN_HZ * n_fft / samplerate)), top - 1)
    peak = (
        (magnitude[bins] > magnitude[bins - 1])
        & (magnitude[bins] >= magnitude[bins + 1])
        & (magnitude[bins] > TUNING_PEAK_RATIO * envelope[bins])
    )
    bins = bins[peak]
    if bins.size == 0:
        return 0.0
    left, centre, right = log[bins - 1], log[bins], log[bins + 1]
    curvature = left - 2.0 * centre + right
    offset = np.where(curvature < 0.0, 0.5 * (left - right) / np.where(curvature < 0.0, curvature, -1.0), 0.0)
    semitones = 12.0 * np.log2((bins + offset) * samplerate / n_fft / 440.0)
    weights = magnitude[bins] - envelope[bins]
    return float(np.angle(np.sum(weights * np.exp(2j * np.pi * semitones))) / (2.0 * np.pi))


def segment_chroma(spectrum: np.ndarray, segments: np.ndarray, samplerate: int, n_fft: int) -> np.ndarray:
    """(12, segments) chroma of per-segment magnitude spectra, whitened and log-compressed (see
    the module's docstring), corrected by the tuning that the whole-track spectrum shows
    (`tuning_of`), registers weighted around A4."""
    import librosa
    from scipy.ndimage import median_filter

    bank = librosa.filters.chroma(
        sr=samplerate,
        n_fft=n_fft,
        tuning=tuning_of(spectrum, samplerate, n_fft),
        ctroct=REGISTER_CENTRE_OCTAVE,
        octwidth=REGISTER_WIDTH_OCTAVES,
    )
    peaks = np.maximum(segments - median_filter(segments, size=(WHITENING_BINS, 1), mode="nearest"), 0.0)
    compressed = np.log1p(COMPRESSION * peaks / max(float(peaks.max(initial=0.0)), 1e-12))
    return bank[:, : segments.shape[0]] @ compressed


def tonalness(spectrum: np.ndarray, samplerate: int, n_fft: int) -> float:
    """Contrast (std / mean) of the chroma of the spectrum's peaks: the summed magnitude spectrum
    divided by its own running median (which flattens noise of any colour to 1 and leaves the
    partials of pitched notes standing), mapped to pitch classes, and divided by the chroma of a
    flat spectrum (the filterbank's own unevenness)."""
    import librosa
    from scipy.ndimage import median_filter

    envelope = median_filter(spectrum, size=WHITENING_BINS, mode="nearest")
    peaks = spectrum / np.maximum(envelope, 1e-12)
    bank = librosa.filters.chroma(sr=samplerate, n_fft=n_fft)[:, : spectrum.size]
    chroma = (bank @ peaks) / (bank @ np.ones(spectrum.size))
    return float(chroma.std() / chroma.mean())


def _segment_triads(chroma: np.ndarray) -> np.ndarray:
    """Index (order of `_triad_matrix`) of the best-matching triad of each voiced segment."""
    energy = chroma.sum(axis=0)
    voiced = energy > 0.1 * np.median(energy[energy > 0]) if np.any(energy > 0) else energy > 0
    if voiced.sum() < 2:
        return np.zeros(0, dtype=int)
    return np.argmax(_triad_matrix() @ _zscored(chroma[:, voiced].T).T, axis=0)


def cadences(triads: np.ndarray) -> np.ndarray:
    """Per key (24), the share of chord changes that go from its dominant (a major triad a fifth
    above) to its tonic triad: the V-I motion that defines a key, and that a pitch-class profile
    cannot see (I-vi-ii-V and vi-ii-V-I use the same notes)."""
    if triads.size < 2:
        return np.zeros(24)
    # Chords held for one segment (~0.5 s) only are passing or misread: drop them.
    changes = np.flatnonzero(np.diff(triads)) + 1
    runs = np.split(triads, changes)
    held = [int(run[0]) for run in runs if run.size >= 2]
    chords = [c for i, c in enumerate(held) if i == 0 or c != held[i - 1]]
    result = np.zeros(24)
    for before, after in pairwise(chords):
        if before < 12 and (before - after) % 12 == 7:
            result[after] += 1.0
    return result / max(1, len(chords) - 1)


def tonic_chords(triads: np.ndarray) -> np.ndarray:
    """Per key (24), the share of segments whose chord is its tonic triad. The tonic chord is the
    most frequent chord of tonal music, and it tells a key from the one that shares its notes
    (C major and A minor: C-E-G or A-C-E) and from its dominant, which a profile only weighs."""
    if triads.size == 0:
        return np.zeros(24)
    return np.bincount(triads, minlength=24) / triads.size


def thirds(total: np.ndarray) -> np.ndarray:
    """Per key (24), how much more the track's chroma (z-scored, on the correlation's scale) holds
    the key's own third above the tonic than the other one: E over Eb for C major, Eb over E for C
    minor. The third is what names a mode; a profile weighs it as one of twelve classes, so a
    strong fifth and tonic alone could decide a parallel or relative key against it."""
    z = _zscored(total) / 12.0
    major_over_minor = np.array([z[(tonic + 4) % 12] - z[(tonic + 3) % 12] for tonic in range(12)])
    return np.concatenate([major_over_minor, -major_over_minor])


def key_scores(chroma: np.ndarray, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """Per key (24, order of `_key_matrix`): Pearson correlation of the track's chroma (12,
    segments) with the key's profile, plus the weighted cadence and tonic-chord shares and the
    weighted third."""
    total = chroma.sum(axis=1)
    correlation = _key_matrix(profile) @ _zscored(total) / 12.0
    triads = _segment_triads(chroma)
    return (
        correlation
        + CADENCE_WEIGHT * cadences(triads)
        + TONIC_CHORD_WEIGHT * tonic_chords(triads)
        + THIRD_WEIGHT * thirds(total)
    )


def _label(index: int) -> tuple[str, str]:
    return PITCH_CLASSES[index % 12], MODES[index // 12]


def estimate_key(chroma: np.ndarray, profile: str = DEFAULT_PROFILE) -> KeyEstimate:
    """Best and second-best key from (12, segments) chroma; null with a reason when the chroma
    carries no tonal shape."""
    total = chroma.sum(axis=1) if chroma.ndim == 2 else chroma
    mean = float(total.mean())
    if mean <= 0.0 or not np.all(np.isfinite(total)):
        return KeyEstimate(None, None, None, None, "no pitched content")
    scores = key_scores(chroma if chroma.ndim == 2 else chroma[:, None], profile)
    order = np.argsort(scores)[::-1]
    best, second = float(scores[order[0]]), float(scores[order[1]])
    # Essentia's "first to second relative strength": the winner's margin relative to its score.
    confidence = float(np.clip((best - second) / max(best, 1e-9), 0.0, 1.0))
    tonic, mode = _label(int(order[0]))
    runner_tonic, runner_mode = _label(int(order[1]))
    return KeyEstimate(tonic, mode, round(confidence, 3), f"{runner_tonic} {runner_mode}")
