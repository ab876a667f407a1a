"""`DspSeparator`: the weight-free separator, streamed block by block like the Demucs engine.

It needs no model weights (only numpy, scipy, librosa and bottleneck), so musicsep still
separates when Demucs cannot run. It is much lower quality than Demucs: the masks come from
signal cues (percussiveness, repetition, stereo position, frequency band), not from learning;
docs/dsp.md gives its measured figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np

from musicsep.model.dsp.framing import BlockFrames, block_bounds, plan_block
from musicsep.model.errors import InvalidOptions
from musicsep.model.numba_cache import first_numba_use

if TYPE_CHECKING:
    from musicsep.model.dsp.masks import DspParams


class FrameReader(Protocol):
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames `[start, stop)` as float32 `(channels, stop - start)`, zeros outside the track."""


class DspSeparator:
    """Drums, bass, other and vocals from soft masks on one STFT; stems add up to the mixture.

    Output block `k` covers samples `[k * block, (k + 1) * block)`; each is computed from a
    window of audio around it (the masks' context, `repeat_window_s` each side), so memory depends
    on the block and window sizes, never on the track's length.
    """

    name = "dsp"
    samplerate = 44100
    audio_channels = 2
    sources = ["drums", "bass", "other", "vocals"]
    normalize = False  # masks are scale-free: no whole-track normalisation pass is needed

    def __init__(self, block_hops: int = 1024, params: DspParams | None = None) -> None:
        # masks.py imports librosa; deferred so importing the separator stays cheap.
        from musicsep.model.dsp.masks import DspParams

        self.params = params or DspParams()
        self.block = block_hops * self.params.hop

    def chunks(self, frames: int, stems: list[str]) -> int:
        """How many times `run` calls `on_chunk`: once per output block."""
        return len(block_bounds(frames, self.block))

    def run(
        self, reader: FrameReader, frames: int, stems: list[str], on_chunk: Callable[[], None]
    ) -> Iterator[np.ndarray]:
        """Yield `(len(stems), 2, n)` float32 blocks covering `[0, frames)` in order."""
        unknown = [stem for stem in stems if stem not in self.sources]
        if unknown:
            raise InvalidOptions(f"stem '{unknown[0]}' is not produced by dsp; it produces: {', '.join(self.sources)}")
        p = self.params
        repetition = bool(set(stems) - {"drums"})  # drums alone need no repetition search
        context = p.repeat_frames(self.samplerate)
        for start, stop in block_bounds(frames, self.block):
            with first_numba_use():
                block = self._block(reader, frames, start, stop, stems, repetition, context)
            on_chunk()
            yield block

    def _block(
        self, reader: FrameReader, frames: int, start: int, stop: int, stems: list[str], repetition: bool, context: int
    ) -> np.ndarray:
        """The separated `(len(stems), 2, stop - start)` block of the track's `[start, stop)`."""
        import librosa

        from musicsep.model.dsp.masks import stem_masks

        p = self.params
        half = p.n_fft // 2
        plan = plan_block(start, stop, frames, n_fft=p.n_fft, hop=p.hop, context=context)
        magnitude = self._context_magnitude(reader, plan) if repetition else None
        # The block's own frames (and the median filter's edge) in float64: the inverse
        # transforms of the four masked copies then add up to the input far below 1e-4.
        audio = reader.read((plan.first - p.edge) * p.hop - half, (plan.last + p.edge - 1) * p.hop + half)
        spec = librosa.stft(audio.astype(np.float64), n_fft=p.n_fft, hop_length=p.hop, center=False)
        own = slice(plan.first - plan.window_first, plan.last - plan.window_first)
        masks = stem_masks(spec, magnitude, own, stems, p, self.samplerate)
        del magnitude
        spec = spec[..., p.edge : spec.shape[-1] - p.edge]
        origin = plan.first * p.hop - half
        block = np.empty((len(stems), self.audio_channels, stop - start), np.float32)
        for index, stem in enumerate(stems):
            wave = librosa.istft(spec * masks.pop(stem), n_fft=p.n_fft, hop_length=p.hop, center=False)
            block[index] = wave[:, start - origin : stop - origin]
        del spec
        return block

    def _context_magnitude(self, reader: FrameReader, plan: BlockFrames) -> np.ndarray:
        """RMS-over-channels magnitude of the repetition window, float32: the window is several
        times the block, and the search and the median need no more precision than this."""
        import librosa

        p = self.params
        half = p.n_fft // 2
        audio = reader.read(plan.window_first * p.hop - half, (plan.window_last - 1) * p.hop + half)
        power = np.zeros((p.n_fft // 2 + 1, plan.window_last - plan.window_first), np.float32)
        for channel in audio:
            power += np.abs(librosa.stft(channel, n_fft=p.n_fft, hop_length=p.hop, center=False)) ** 2
        return np.sqrt(power / len(audio))

    def prepare(self, frames: int, stems: list[str], options: object = None) -> DspPass:
        """The engine's entry point (`separate_file`); Demucs's pass options do not apply here."""
        return DspPass(self, frames, list(stems))


class DspPass:
    """One separation of one track, in the shape the engine drives (`chunks`, `blocks`)."""

    def __init__(self, separator: DspSeparator, frames: int, stems: list[str]) -> None:
        self._separator = separator
        self._frames = frames
        self._stems = stems
        self.chunks = separator.chunks(frames, stems)

    def blocks(self, reader: FrameReader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        return self._separator.run(reader, self._frames, self._stems, on_chunk)
