"""Streaming features for tempo and key, from one short-time Fourier transform of a mono copy.

The track arrives as decoded blocks of any length. Each block is down-mixed, resampled with a
streaming resampler (soxr keeps its filter state between blocks) to `ANALYSIS_RATE`, and cut into
overlapping frames. From each frame's magnitude spectrum two small things are kept:
- onset strength (half-wave rectified log-mel flux) in a few frequency bands, one value per band
  per hop: the rhythm evidence;
- the running sum of magnitude spectra (a long-term average spectrum): the pitch evidence; the
  chroma of the whole track is a linear map of it, applied once at the end with the tuning
  estimated from the same sum.
So memory grows by a few numbers per 23 ms hop (about 5 MB for an hour), never by samples.

librosa's `stft`/`onset_strength` need the whole signal in memory; the framing and the flux are
written here so they can run block by block, and they compute the same quantities (centred Hann
frames, lag-1 rectified log-mel difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_RATE = 11025
N_FFT = 2048
HOP = 256
N_MELS = 64
# Band edges (Hz) of the onset-strength bands: kick/bass, body of snares/chords, hats/noise.
BAND_EDGES = (0.0, 200.0, 2000.0, ANALYSIS_RATE / 2.0)
# Pitch evidence is kept per segment of this many hops (about 0.5 s), for bins up to PITCH_FMAX.
SEGMENT_HOPS = 22
PITCH_FMAX = 2500.0
PITCH_BINS = int(PITCH_FMAX * N_FFT / ANALYSIS_RATE) + 1
# The log-mel flux of a 186 ms Hann window peaks this long before a sharp onset (measured on
# clicks); onset and beat times are shifted by it.
ONSET_LATENCY_S = 0.046
_LOG_FLOOR = 1e-8  # -80 dB relative to a full-scale sine: below it, flux is noise


@dataclass
class SignalFeatures:
    """What tempo and key estimation need from one signal."""

    onset: np.ndarray  # (len(BAND_EDGES) - 1, frames) onset strength per band
    spectrum: np.ndarray  # (N_FFT // 2 + 1,) summed magnitude spectrum
    segments: np.ndarray  # (PITCH_BINS, segments) magnitude spectrum summed per segment
    frames: int
    rms: float  # root mean square of the analysed mono signal

    @property
    def pitch_spectrum(self) -> np.ndarray:
        """The summed magnitude spectrum up to PITCH_FMAX."""
        return self.spectrum[:PITCH_BINS]

    @property
    def fps(self) -> float:
        return ANALYSIS_RATE / HOP


class FeatureStream:
    """Feed mono float32 samples at `samplerate` with `add`, then call `finish` once."""

    def __init__(self, samplerate: int) -> None:
        import librosa
        import scipy.sparse
        import soxr

        self._resampler = (
            soxr.ResampleStream(samplerate, ANALYSIS_RATE, 1, dtype="float32", quality="HQ")
            if samplerate != ANALYSIS_RATE
            else None
        )
        # Centred frames, as librosa's stft(center=True): pad half a window of zeros at the start.
        self._buffer = np.zeros(N_FFT // 2, dtype=np.float32)
        self._window = (np.hanning(N_FFT + 1)[:-1] / (N_FFT / 2.0)).astype(np.float32)
        mel = librosa.filters.mel(sr=ANALYSIS_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=30.0)
        centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=30.0, fmax=ANALYSIS_RATE / 2)[1:-1]
        # Each FFT bin feeds at most two mel bands: a sparse product is ~10x cheaper than dense.
        self._mel = scipy.sparse.csr_matrix(mel.astype(np.float32))
        self._band_of_mel = np.digitize(centres, BAND_EDGES[1:-1])
        self._previous: np.ndarray | None = None
        self._onset_chunks: list[np.ndarray] = []
        self._spectrum = np.zeros(N_FFT // 2 + 1)
        self._segments: list[np.ndarray] = []
        self._open_segment = np.zeros(PITCH_BINS, dtype=np.float32)
        self._open_hops = 0
        self._frames = 0
        self._energy = 0.0
        self._samples = 0

    def add(self, mono: np.ndarray) -> None:
        """Add mono samples at the input rate."""
        self._push(self._resample(mono, last=False))

    def _resample(self, mono: np.ndarray, *, last: bool) -> np.ndarray:
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is None:
            return mono
        return self._resampler.resample_chunk(mono, last=last)

    def _push(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        self._energy += float(np.dot(samples, samples))
        self._samples += samples.size
        self._buffer = np.concatenate([self._buffer, samples])
        self._drain()

    def _drain(self) -> None:
        count = 0 if self._buffer.size < N_FFT else 1 + (self._buffer.size - N_FFT) // HOP
        if count == 0:
            return
        import scipy.fft
        from numpy.lib.stride_tricks import sliding_window_view

        frames = sliding_window_view(self._buffer, N_FFT)[: count * HOP : HOP]
        magnitude = np.abs(scipy.fft.rfft(frames * self._window, axis=1))
        self._spectrum += magnitude.sum(axis=0)
        self._add_segments(magnitude[:, :PITCH_BINS])
        log_mel = np.log10(np.maximum((self._mel @ (magnitude**2).T).T, _LOG_FLOOR))
        if self._previous is None:
            self._previous = log_mel[:1]
        flux = np.maximum(0.0, np.diff(np.concatenate([self._previous, log_mel]), axis=0))
        self._previous = log_mel[-1:]
        bands = np.stack([flux[:, self._band_of_mel == b].mean(axis=1) for b in range(len(BAND_EDGES) - 1)])
        self._onset_chunks.append(bands.astype(np.float32))
        self._frames += count
        self._buffer = self._buffer[count * HOP :]

    def _add_segments(self, magnitude: np.ndarray) -> None:
        while magnitude.shape[0]:
            take = min(SEGMENT_HOPS - self._open_hops, magnitude.shape[0])
            self._open_segment += magnitude[:take].sum(axis=0)
            self._open_hops += take
            magnitude = magnitude[take:]
            if self._open_hops == SEGMENT_HOPS:
                self._segments.append(self._open_segment)
                self._open_segment = np.zeros(PITCH_BINS, dtype=np.float32)
                self._open_hops = 0

    def finish(self) -> SignalFeatures:
        """Flush the resampler and the last half window; the stream cannot be fed afterwards."""
        if self._resampler is not None:
            self._push(self._resample(np.zeros(0, dtype=np.float32), last=True))
        samples = self._samples
        # librosa's centred framing: 1 + n // hop frames, the last ones padded with zeros.
        wanted = 1 + samples // HOP
        self._buffer = np.concatenate([self._buffer, np.zeros(N_FFT, dtype=np.float32)])
        self._drain()
        onset = (
            np.concatenate(self._onset_chunks, axis=1)[:, :wanted]
            if self._onset_chunks
            else np.zeros((len(BAND_EDGES) - 1, 0), dtype=np.float32)
        )
        rms = float(np.sqrt(self._energy / samples)) if samples else 0.0
        if self._open_hops:
            self._segments.append(self._open_segment)
        segments = np.stack(self._segments, axis=1) if self._segments else np.zeros((PITCH_BINS, 0), dtype=np.float32)
        return SignalFeatures(onset=onset, spectrum=self._spectrum, segments=segments, frames=onset.shape[1], rms=rms)
