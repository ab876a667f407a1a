"""Soft time-frequency masks for drums, vocals, bass and other, from signal cues alone.

The cues, in the order the masks are peeled off the mixture:
- drums: harmonic-percussive separation (median filtering of the magnitude across time and across
  frequency, `librosa.decompose.hpss`), per channel;
- vocals: what does not repeat (REPET-SIM: each frame's repeating background is the median of its
  most similar frames a second or more away, `librosa.decompose.nn_filter`) and sits in the centre
  of the stereo image (left and right alike), above 100 Hz;
- bass: the low band (below ~180 Hz, smooth crossover) of what is neither drums nor vocals;
- other: the rest.
Each mask is a product of the ones before, so the four add up to exactly 1 in every bin and the
stems add up to the mixture. The parameters were chosen on the dev split of the real multitracks
in bench/dsp_quality.py --real and checked on its synthetic songs (docs/dsp.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import bottleneck
import librosa
import numpy as np
import scipy.sparse

#: log1p(gain * |X|) compresses the magnitudes the similarity search compares, so a frame's match
#: is decided by its spectral shape rather than by its few loudest bins (measured: +5 dB vocals).
_FEATURE_GAIN = 100.0
_EPS = 1e-12


@dataclass(frozen=True)
class DspParams:
    """The method's knobs; defaults are the ones docs/dsp.md reports figures for."""

    n_fft: int = 2048
    hop: int = 512
    #: HPSS kernels: across time in frames (librosa's default, 0.36 s) and across frequency in bins
    #: (17 bins = 370 Hz, narrower than librosa's 31), soft mask with librosa's power 2. Chosen on
    #: the real multitracks' dev split: the 61 bins and power 3 once fitted to the synthetic drum
    #: kit cost real drums 1.9 dB against these (docs/dsp.md has both sets' figures).
    harmonic_kernel: int = 31
    percussive_kernel: int = 17
    percussive_power: float = 2.0
    #: Repetition search: neighbours at least `repeat_gap_s` and at most `repeat_window_s` away.
    repeat_window_s: float = 10.0
    repeat_gap_s: float = 1.0
    neighbours: int = 10
    feature_max_hz: float = 8000.0
    #: Exponent on the centre similarity (1 = identical left and right). 2 keeps what is panned
    #: away out of the vocals and still lets a voice with stereo reverb in: 8, fitted to the dry
    #: synthetic voice, cost real vocals 0.6 dB.
    centre_power: float = 2.0
    vocal_low_hz: float = 100.0
    bass_cutoff_hz: float = 180.0
    crossover_order: int = 4

    def frames_per_second(self, samplerate: int) -> float:
        return samplerate / self.hop

    @property
    def edge(self) -> int:
        """Frames of context the horizontal median filter reads on each side."""
        return self.harmonic_kernel // 2

    def repeat_frames(self, samplerate: int) -> int:
        """How far, in frames, the repetition search looks on each side of a frame."""
        return int(round(self.repeat_window_s * self.frames_per_second(samplerate)))


def running_median(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Centred running median along `axis`, edges mirrored: scipy.ndimage.median_filter's result.

    bottleneck's double-heap moving median is O(log size) per value where scipy's is O(size):
    5-15x faster on these spectrograms (measured), which decides whether a long track takes
    minutes or tens of minutes.
    """
    half = size // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (half, half)
    trailing = bottleneck.move_median(np.pad(values, pad, mode="symmetric"), size, axis=axis)
    return np.take(trailing, np.arange(size - 1, trailing.shape[axis]), axis=axis)


def percussive_mask(magnitude: np.ndarray, params: DspParams) -> np.ndarray:
    """Soft percussive mask per channel, shaped like `magnitude` `(channels, bins, frames)`.

    librosa.decompose.hpss's method (median across time = harmonic, across frequency =
    percussive, Wiener-like soft mask) with a faster median filter.
    """
    harmonic = running_median(magnitude, params.harmonic_kernel, axis=-1)
    percussive = running_median(magnitude, params.percussive_kernel, axis=-2)
    return librosa.util.softmask(percussive, harmonic, power=params.percussive_power)


def centre_similarity(spec: np.ndarray) -> np.ndarray:
    """1 where left and right are equal (a centre-panned source), towards 0 for one-sided or
    uncorrelated bins (Avendano & Jot's inter-channel similarity). `spec` is `(2, bins, frames)`."""
    left, right = spec[0], spec[-1]
    cross = 2.0 * np.abs(left * np.conj(right))
    return cross / (np.abs(left) ** 2 + np.abs(right) ** 2 + _EPS)


def repetition_mask(magnitude: np.ndarray, targets: slice, params: DspParams, samplerate: int) -> np.ndarray:
    """Soft mask of what does not repeat, for the `targets` frames of `magnitude` `(bins, frames)`.

    librosa's own REPET-SIM recipe searches the whole track for neighbours; here each frame looks
    only at the frames of `magnitude` within `repeat_window_s` of it, so a frame's result does not
    depend on the block it was computed in (no seams) and memory stays bounded. That banded
    neighbour search is the hand-written part: librosa's recurrence_matrix has no maximum distance.
    """
    fps = params.frames_per_second(samplerate)
    bins = int(np.searchsorted(librosa.fft_frequencies(sr=samplerate, n_fft=params.n_fft), params.feature_max_hz))
    features = np.log1p(_FEATURE_GAIN * magnitude[:bins])
    features /= np.linalg.norm(features, axis=0, keepdims=True) + _EPS
    target_idx = np.arange(targets.start, targets.stop, dtype=np.int32)
    candidate_idx = np.arange(magnitude.shape[1], dtype=np.int32)
    background = magnitude[:, targets]
    if candidate_idx.size == 0 or target_idx.size == 0:
        return np.zeros_like(background)
    similarity = features[:, target_idx].T @ features[:, candidate_idx]
    distance = np.abs(target_idx[:, None] - candidate_idx[None, :])
    out_of_reach = (distance < params.repeat_gap_s * fps) | (distance > params.repeat_frames(samplerate))
    similarity[out_of_reach] = -np.inf
    k = min(params.neighbours, candidate_idx.size)
    picks = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    usable = np.isfinite(np.take_along_axis(similarity, picks, axis=1))
    rows = candidate_idx[picks][usable]
    cols = np.broadcast_to(target_idx[:, None], picks.shape)[usable]
    # rec[i, j] != 0: frame i is one of frame j's neighbours (librosa's convention, column-wise).
    frames = magnitude.shape[1]
    rec = scipy.sparse.csc_matrix((np.ones(rows.size), (rows, cols)), shape=(frames, frames))
    # Frames as contiguous rows: nn_filter gathers neighbours with np.take along its frame axis,
    # which copies the whole array on every call when that axis is strided (measured: 20x slower).
    rows_first = np.ascontiguousarray(magnitude.T)
    repeating = librosa.decompose.nn_filter(rows_first, rec=rec, aggregate=np.median, axis=0)[targets].T
    background = np.minimum(background, repeating)
    foreground = magnitude[:, targets] - background
    return librosa.util.softmask(foreground, background, power=2)


def _lowpass_gain(freqs: np.ndarray, cutoff: float, order: int) -> np.ndarray:
    """Butterworth-shaped magnitude, 1 below `cutoff` and 0 far above: a smooth crossover."""
    return 1.0 / np.sqrt(1.0 + (freqs / cutoff) ** (2 * order))


def stem_masks(
    spec: np.ndarray, magnitude: np.ndarray | None, own: slice, stems: list[str], params: DspParams, samplerate: int
) -> dict[str, np.ndarray]:
    """Masks `(channels, bins, frames)` for `stems`, for a block's own frames.

    `spec` is the complex STFT `(channels, bins, frames + 2 * edge)` of the block's own frames
    with `params.edge` frames more each side for the horizontal median. `magnitude` is the
    channels' RMS magnitude `(bins, window_frames)` of the repetition context (every frame within
    `repeat_window_s` that touches the track), in which `own` are the block's frames; it may be
    None when only drums are asked for.
    """
    edge = params.edge
    count = spec.shape[-1] - 2 * edge
    drums = percussive_mask(np.abs(spec), params)[..., edge : edge + count]
    masks = {"drums": drums}
    if not set(stems) - {"drums"}:
        return masks
    freqs = librosa.fft_frequencies(sr=samplerate, n_fft=params.n_fft)[:, None]
    vocal = (
        repetition_mask(magnitude, own, params, samplerate)
        * centre_similarity(spec[..., edge : edge + count]) ** params.centre_power
        * (1.0 - _lowpass_gain(freqs, params.vocal_low_hz, params.crossover_order))
    )
    rest = 1.0 - drums
    masks["vocals"] = rest * vocal
    not_vocal = rest * (1.0 - vocal)
    low = _lowpass_gain(freqs, params.bass_cutoff_hz, params.crossover_order)
    masks["bass"] = not_vocal * low
    masks["other"] = not_vocal * (1.0 - low)
    return {name: masks[name] for name in stems}
