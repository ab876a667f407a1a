"""Ensembles: 2-4 models run over the same track, their stems combined while streaming.

Each member streams its own pass (its own chunk size); the ensemble keeps, per member, only the
frames it has produced that the slowest member has not reached yet, and combines the frames all
members have (memory: a few chunks of the members, never the track). Algorithms, as UVR names them:

- `avg_wave`: the (weighted) mean of the members' waveforms;
- `median_wave`: the per-sample median (weights do not apply);
- `max_spec` / `min_spec`: per STFT bin, the member's complex value with the largest / smallest
  magnitude, then the inverse STFT (weights do not apply).

The spectral ones are computed blockwise with the context their frames need, so the result equals
one STFT/iSTFT of the whole track (`SPEC_N_FFT`, `SPEC_HOP`, periodic Hann, centred, zeros beyond the
track, iSTFT dividing by the summed squared window, as `torch.istft`); model/ensemble_spec.py.

Members that normalise the track (Demucs) read it normalised and are scaled back, exactly as when
they run alone; stems a member lacks may be derived (`instrumental` = the sum of a multi-stem
model's non-vocal stems).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np

from musicsep.model.ensemble_spec import SpecCombiner
from musicsep.model.errors import InvalidOptions
from musicsep.model.frame_queue import take_frames
from musicsep.protocol import ENSEMBLE_MAX_MODELS as MAX_MEMBERS
from musicsep.protocol import ENSEMBLE_METHODS as METHODS
from musicsep.protocol import ENSEMBLE_MIN_MODELS as MIN_MEMBERS


def check_ensemble(members: Sequence[str], method: str, weights: Sequence[float] | None) -> None:
    """Refuse an ensemble that cannot run, before any model is loaded."""
    if not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
        raise InvalidOptions(f"an ensemble combines {MIN_MEMBERS} to {MAX_MEMBERS} models, not {len(members)}")
    if len(set(members)) != len(members):
        raise InvalidOptions("an ensemble names each model once")
    if method not in METHODS:
        raise InvalidOptions(f"unknown ensemble method '{method}'; choose one of {', '.join(METHODS)}")
    if weights is not None:
        if method != "avg_wave":
            raise InvalidOptions(f"ensemble weights apply to avg_wave only, not to {method}")
        if len(weights) != len(members):
            raise InvalidOptions(f"give one ensemble weight per model ({len(members)}), not {len(weights)}")
        if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise InvalidOptions("ensemble weights must be non-negative numbers, not all zero")


def providable(sources: Sequence[str]) -> list[str]:
    """A member's stems, plus `instrumental` for a multi-stem model with vocals (the rest summed)."""
    stems = list(sources)
    if "vocals" in stems and "instrumental" not in stems and len(stems) > 2:
        stems.append("instrumental")
    return stems


class EnsembleSeparator:
    """The engine contract over several separators: `prepare(frames, stems, options, stats=...)`."""

    normalize = False  # each member gets the track as it wants it (see the module docstring)
    needs_track_stats = True  # separate_file passes the track's (mean, std) to `prepare`

    def __init__(
        self, name: str, members: Sequence, method: str = "avg_wave", weights: Sequence[float] | None = None
    ) -> None:
        check_ensemble([member.name for member in members], method, weights)
        rates = {int(member.samplerate) for member in members}
        channels = {int(member.audio_channels) for member in members}
        if len(rates) > 1 or len(channels) > 1:
            raise InvalidOptions("the models of an ensemble must share a sample rate and channel count")
        self.name = name
        self.members = list(members)
        self.method = method
        self.weights = list(map(float, weights)) if weights is not None else None
        self.samplerate = rates.pop()
        self.audio_channels = channels.pop()
        common = [
            stem
            for stem in providable(members[0].sources)
            if all(stem in providable(member.sources) for member in members[1:])
        ]
        if not common:
            raise InvalidOptions("the models of this ensemble have no stem in common")
        self.sources = common
        self.device = str(getattr(members[0], "device", "cpu"))
        self.precision = getattr(members[0], "precision", "fp32")

    @property
    def recoveries(self) -> list[str]:
        return [note for member in self.members for note in getattr(member, "recoveries", ())]

    def prepare(
        self, frames: int, stems: list[str], options: object = None, stats: tuple[float, float] = (0.0, 1.0)
    ) -> EnsemblePass:
        unknown = [stem for stem in stems if stem not in self.sources]
        if unknown:
            raise InvalidOptions(
                f"stem '{unknown[0]}' is not produced by every model of this ensemble; "
                f"they share: {', '.join(self.sources)}"
            )
        return EnsemblePass(self, frames, list(stems), options, stats)


class _NormalisedReader:
    """The track as Demucs feeds it: `(x - mean) / std` inside the track, zeros outside (TrackSpill's arithmetic)."""

    def __init__(self, reader, frames: int, mean: float, std: float) -> None:
        self._reader, self._frames = reader, frames
        self._mean, self._std = np.float32(mean), np.float32(std)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = self._reader.read(start, stop)
        lo, hi = max(start, 0), min(stop, self._frames)
        if hi > lo:
            out[:, lo - start : hi - start] = (out[:, lo - start : hi - start] - self._mean) / self._std
        return out


class _MemberRun:
    """One member's pass, its output mapped onto the ensemble's stems, in the raw track's scale."""

    def __init__(self, member, frames: int, stems: list[str], options: object, stats: tuple[float, float]) -> None:
        own = list(member.sources)
        self._derive = "instrumental" in stems and "instrumental" not in own
        wanted = set(stems) | ({stem for stem in own if stem != "vocals"} if self._derive else set())
        self._compute = [stem for stem in own if stem in wanted]
        self._stems = stems
        self._member = member
        self._frames = frames
        self._scale = stats if member.normalize else None
        self.pass_ = member.prepare(frames, self._compute, options)

    def blocks(self, reader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        if self._scale is not None:
            reader = _NormalisedReader(reader, self._frames, *self._scale)
        for block in self.pass_.blocks(reader, on_chunk):
            if self._scale is not None:  # the engine's `out * std + mean`, in float32, per stem
                block = block * np.float32(self._scale[1]) + np.float32(self._scale[0])
            yield self._map(block)

    def _map(self, block: np.ndarray) -> np.ndarray:
        by_name = dict(zip(self._compute, block, strict=True))
        if self._derive:
            rest = [by_name[stem] for stem in self._compute if stem != "vocals"]
            by_name["instrumental"] = np.sum(rest, axis=0, dtype=np.float32)
        return np.stack([by_name[stem] for stem in self._stems]).astype(np.float32, copy=False)


class EnsemblePass:
    """One separation of one track by every member, combined as the frames become available."""

    def __init__(
        self, separator: EnsembleSeparator, frames: int, stems: list[str], options: object, stats: tuple[float, float]
    ) -> None:
        self.frames = frames
        self._separator = separator
        self._runs = [_MemberRun(member, frames, stems, options, stats) for member in separator.members]
        self.chunks = sum(run.pass_.chunks for run in self._runs)

    def blocks(self, reader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        separator = self._separator
        streams = [run.blocks(reader, on_chunk) for run in self._runs]
        queues: list[list[np.ndarray]] = [[] for _ in streams]
        have = [0] * len(streams)
        aligned = 0
        spec = SpecCombiner(self.frames, separator.method) if separator.method.endswith("_spec") else None
        while aligned < self.frames:
            behind = min(range(len(streams)), key=have.__getitem__)
            block = next(streams[behind], None)
            if block is None:
                raise RuntimeError(
                    f"ensemble member {separator.members[behind].name} ended after "
                    f"{have[behind]} of {self.frames} frames"
                )
            queues[behind].append(block)
            have[behind] += block.shape[-1]
            ready = min(have)
            if ready <= aligned:
                continue
            join = partial(np.concatenate, axis=-1)
            estimates = np.stack([take_frames(queue, ready - aligned, join) for queue in queues])  # (M, S, C, n)
            aligned = ready
            if spec is None:
                yield self._combine_wave(estimates)
            else:
                out = spec.push(estimates)
                if out.shape[-1]:
                    yield out

    def _combine_wave(self, estimates: np.ndarray) -> np.ndarray:
        if self._separator.method == "median_wave":
            return np.median(estimates, axis=0).astype(np.float32)
        weights = self._separator.weights or [1.0] * len(estimates)
        scale = np.asarray(weights, np.float64) / sum(weights)
        return np.tensordot(scale, estimates, axes=(0, 0)).astype(np.float32)
