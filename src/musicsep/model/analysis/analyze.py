"""Whole-track analysis from decoded blocks: duration, tempo and beats, key, loudness.

One pass over the blocks feeds two bounded accumulators: the BS.1770 meter on the samples as
decoded (full rate, every channel) and the feature stream on a mono copy resampled to
`features.ANALYSIS_RATE`. Memory therefore does not grow with the samples, only by a few numbers
per 23 ms hop; a 60-minute file stays far under 500 MB (bench/analysis_eval.py --memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from musicsep.model.analysis import features as feat
from musicsep.model.analysis.key import (
    MIN_TONALNESS,
    KeyEstimate,
    estimate_key,
    segment_chroma,
    tonalness,
)
from musicsep.model.analysis.loudness import LoudnessMeter
from musicsep.model.analysis.schema import AnalysisResult, Key, Loudness, Tempo, TempoAlternative, spelled_key
from musicsep.model.analysis.tempo import MIN_SECONDS, TempoEstimate, compile_beat_tracker, estimate_tempo
from musicsep.model.errors import InvalidAudio
from musicsep.model.numba_cache import first_numba_use

# Below this RMS (-90 dBFS) the analysed signal is silence for tempo and key.
SILENCE_RMS = 10 ** (-90 / 20)
# Stems that carry the beat, and stems that carry no pitch, in the stem-aware mode.
RHYTHM_STEMS = ("drums", "bass")
# The most progress reported while blocks are read: tempo and key are estimated after the last one.
_LAST_BLOCK_SHARE = 0.95
UNPITCHED_STEMS = ("drums",)


def _as_2d(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
        block = block[None, :]
    if block.ndim != 2:
        raise InvalidAudio("audio blocks must be shaped (channels, samples)")
    return block


def _mono(block: np.ndarray) -> np.ndarray:
    if block.shape[0] == 2:
        return (block[0] + block[1]) * np.float32(0.5)
    return block.mean(axis=0)


def _check_finite(features: feat.SignalFeatures) -> None:
    # A NaN or infinite sample poisons the running sums: one check at the end instead of a pass
    # over every block.
    if not np.isfinite(features.rms):
        raise InvalidAudio("the audio contains NaN or infinite samples")


class _Mix:
    """Duration and loudness of the samples as decoded."""

    def __init__(self, samplerate: int) -> None:
        self.samplerate = samplerate
        self.frames = 0
        self.meter: LoudnessMeter | None = None

    def add(self, block: np.ndarray) -> None:
        if self.meter is None:
            self.meter = LoudnessMeter(self.samplerate, block.shape[0])
        self.meter.add(block)
        self.frames += block.shape[1]

    def loudness(self) -> Loudness:
        if self.meter is None:
            return Loudness(reason="no audio")
        lufs, peak, reason = self.meter.result()
        return Loudness(
            lufs=None if lufs is None else round(lufs, 2),
            peak_dbfs=None if peak is None else round(peak, 2),
            reason=reason,
        )


def _pitched(features: feat.SignalFeatures) -> bool:
    """Whether the spectrum has pitch peaks (music, not noise): see key.tonalness."""
    return tonalness(features.pitch_spectrum, feat.ANALYSIS_RATE, feat.N_FFT) >= MIN_TONALNESS


def _tempo_of(features: feat.SignalFeatures, duration_s: float) -> Tempo:
    if features.rms < SILENCE_RMS and duration_s >= MIN_SECONDS:
        estimate = TempoEstimate(None, None, reason="silent: nothing above -90 dBFS")
    else:
        pitched = duration_s >= MIN_SECONDS and features.rms >= SILENCE_RMS and _pitched(features)
        estimate = estimate_tempo(features.onset, features.fps, duration_s, feat.ONSET_LATENCY_S, pitched=pitched)
    alternatives = [
        TempoAlternative(bpm=bpm, relation=relation, score=score) for bpm, relation, score in estimate.alternatives
    ]
    return Tempo(
        bpm=estimate.bpm,
        confidence=estimate.confidence,
        beats=estimate.beats,
        reason=estimate.reason,
        alternatives=alternatives,
    )


def _key_of(features: feat.SignalFeatures, duration_s: float) -> Key:
    if duration_s < MIN_SECONDS:
        estimate = KeyEstimate(
            None,
            None,
            None,
            None,
            f"too short: {duration_s:.1f} s, a key needs at least {MIN_SECONDS:g} s",
        )
    elif features.rms < SILENCE_RMS:
        estimate = KeyEstimate(None, None, None, None, "silent: nothing above -90 dBFS")
    elif not _pitched(features):
        estimate = KeyEstimate(None, None, None, None, "no pitched content: the spectrum is as smooth as noise")
    else:
        chroma = segment_chroma(features.spectrum, features.segments, feat.ANALYSIS_RATE, feat.N_FFT)
        estimate = estimate_key(chroma)
    spelled, runner_up = spelled_key(estimate.label), spelled_key(estimate.runner_up)
    return Key(
        label=estimate.label,
        tonic=estimate.tonic,
        mode=estimate.mode,
        confidence=estimate.confidence,
        runner_up=estimate.runner_up,
        reason=estimate.reason,
        name=spelled[0] if spelled else None,
        tonic_name=spelled[1] if spelled else None,
        runner_up_name=runner_up[0] if runner_up else None,
    )


def analyze_blocks(blocks: Iterable[np.ndarray], samplerate: int) -> AnalysisResult:
    """Analyse a track given as (channels, n) float blocks at `samplerate`, in one pass."""
    with first_numba_use(compile_beat_tracker):
        return _analyze_blocks(blocks, samplerate)


def _analyze_blocks(blocks: Iterable[np.ndarray], samplerate: int) -> AnalysisResult:
    mix = _Mix(int(samplerate))
    stream = feat.FeatureStream(int(samplerate))
    for raw in blocks:
        block = _as_2d(raw)
        if block.shape[1] == 0:
            continue
        mix.add(block)
        stream.add(_mono(block))
    features = stream.finish()
    _check_finite(features)
    duration_s = mix.frames / samplerate
    return AnalysisResult(
        duration_s=round(duration_s, 6),
        tempo=_tempo_of(features, duration_s),
        key=_key_of(features, duration_s),
        loudness=mix.loudness(),
    )


def analysis_samplerate(path: Path) -> int:
    """The file's own rate, so loudness is measured on the samples as they are."""
    from musicsep.model.audio import probe

    return int(probe(path).samplerate or 44100)


def _read_ahead(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Decode the next block in a helper thread while this one is analysed: FFmpeg and numpy
    release the GIL, so decoding and analysis overlap. One block ahead bounds the memory."""
    from concurrent.futures import ThreadPoolExecutor

    source = iter(blocks)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="musicsep-decode") as pool:
        pending = pool.submit(next, source, None)
        while (block := pending.result()) is not None:
            pending = pool.submit(next, source, None)
            yield block


def _reporting(
    blocks: Iterable[np.ndarray], samplerate: int, expected_s: float, on_progress: Callable[[float], None]
) -> Iterator[np.ndarray]:
    """The blocks, telling `on_progress` the share of the track read so far (below 1: the
    estimates after the last block take a moment too)."""
    frames, total = 0, max(expected_s * samplerate, 1.0)
    for block in blocks:
        frames += block.shape[1]
        on_progress(min(frames / total, _LAST_BLOCK_SHARE))
        yield block


def analyze_file(
    path: str | Path,
    *,
    max_duration_s: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    expected_s: float | None = None,
) -> AnalysisResult:
    """Decode `path` block by block (stereo, its own rate) and analyse it. `on_progress` hears
    the fraction done (0..1) after each block, out of `expected_s` (else the header's duration)."""
    from musicsep.model.audio import decode_blocks, probe

    path = Path(path)
    samplerate = analysis_samplerate(path)
    blocks: Iterable[np.ndarray] = decode_blocks(path, samplerate=samplerate, channels=2, max_duration_s=max_duration_s)
    if on_progress is not None:
        length = expected_s or probe(path).duration_s or 0.0
        blocks = _reporting(blocks, samplerate, length, on_progress)
    return analyze_blocks(_read_ahead(blocks), samplerate)


def _rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The same samples in (channels, size) blocks; the last may be shorter."""
    pending: list[np.ndarray] = []
    held = 0
    for raw in blocks:
        block = _as_2d(raw)
        pending.append(block)
        held += block.shape[1]
        while held >= size:
            joined = np.concatenate(pending, axis=1)
            yield joined[:, :size]
            pending, held = [joined[:, size:]], held - size
    if held:
        yield np.concatenate(pending, axis=1)


def _stereo(block: np.ndarray, frames: int) -> np.ndarray:
    out = np.zeros((2, frames), dtype=np.float32)
    if block.shape[0] == 1:
        out[:, : block.shape[1]] = block
    else:
        out[:, : block.shape[1]] = block[:2]
    return out


def analyze_stems(
    stems: Mapping[str, str | Path | Iterable[np.ndarray]],
    *,
    samplerate: int | None = None,
    mix: str | Path | Iterable[np.ndarray] | None = None,
    block_frames: int = 65536,
) -> AnalysisResult:
    """Stem-aware analysis: tempo from the rhythm stems (drums + bass), key from the pitched stems
    (all but drums), duration and loudness from `mix` (or, without it, the sum of the stems).

    Stems are paths (decoded at `samplerate`, or the first stem's own rate) or iterators of
    (channels, n) blocks at `samplerate`. A stem set without drums or bass takes its tempo from
    the mix of all stems.
    """
    from musicsep.model.audio import decode_blocks

    names = list(stems)
    if not names:
        raise InvalidAudio("no stems to analyse")
    first = stems[names[0]]
    if samplerate is None:
        if not isinstance(first, (str, Path)):
            raise InvalidAudio("samplerate is required when stems are given as blocks")
        samplerate = analysis_samplerate(Path(first))

    def blocks_of(source: str | Path | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        if isinstance(source, (str, Path)):
            source = decode_blocks(Path(source), samplerate=samplerate, channels=2)
        return _rechunk(source, block_frames)

    with first_numba_use(compile_beat_tracker):
        sources = [blocks_of(stems[name]) for name in names]
        mix_source = None if mix is None else blocks_of(mix)
        rhythm_names = [n for n in names if n in RHYTHM_STEMS] or names
        pitched_names = [n for n in names if n not in UNPITCHED_STEMS] or names
        rhythm, pitched = feat.FeatureStream(samplerate), feat.FeatureStream(samplerate)
        total = _Mix(samplerate)
        while True:
            group = {name: next(source, None) for name, source in zip(names, sources, strict=True)}
            mixed = None if mix_source is None else next(mix_source, None)
            present = [b for b in group.values() if b is not None]
            if not present and mixed is None:
                break
            frames = max([b.shape[1] for b in present] + ([mixed.shape[1]] if mixed is not None else []))
            stereo = {n: _stereo(b, frames) for n, b in group.items() if b is not None}
            silent = np.zeros((2, frames), dtype=np.float32)
            rhythm.add(_mono(sum((stereo.get(n, silent) for n in rhythm_names), silent)))
            pitched.add(_mono(sum((stereo.get(n, silent) for n in pitched_names), silent)))
            total.add(mixed if mixed is not None else sum(stereo.values(), silent))
        duration_s = total.frames / samplerate
        rhythm_features, pitched_features = rhythm.finish(), pitched.finish()
        _check_finite(rhythm_features)
        _check_finite(pitched_features)
        return AnalysisResult(
            duration_s=round(duration_s, 6),
            tempo=_tempo_of(rhythm_features, duration_s),
            key=_key_of(pitched_features, duration_s),
            loudness=total.loudness(),
        )
