"""`MdxSeparator`: UVR's MDX-Net ONNX models, streamed chunk by chunk with memory independent of length.

The reference (UVR's `SeperateMDX.demix`, python-audio-separator's `MDXSeparator.demix`) pads the
whole track with `trim = n_fft / 2` zeros in front and up to a whole generated chunk behind,
runs the model on chunks of `hop * (dim_t - 1)` samples every `(1 - overlap) * chunk` samples,
weights each chunk's output by a symmetric Hann window of the chunk's length (shorter at the
end of the padded track), adds them and divides by the added windows, then cuts the padding.
Chunk `k` touches padded samples `[o_k, o_k + chunk)` only, so once it has been added no later
chunk changes samples before `o_{k+1}`: they are final and leave at once. The accumulator is one
chunk long, whatever the track's length; `blocks` yields each finished stretch. Chunks that start
after the track's end (the reference runs one or two: they touch only cut padding) are skipped.

Per chunk: STFT (n_fft, hop, periodic Hann, center=True) of both channels cut to dim_f bins as
channels [L.re, L.im, R.re, R.im], the 3 lowest bins zeroed, the model (`-f(-x)/2 + f(x)/2`
with denoise), the output zero-padded back to n_fft/2 + 1 bins and inverted. The STFT is the
reference's torch.stft arithmetic in numpy (stft.py says why).

The primary stem is the model's output; the secondary is `mix - primary * compensate`, like
audio-separator (UVR also scales the primary stem it writes by `compensate`). Unlike
audio-separator, and like UVR, there is no input-peak renormalisation: audio-separator scales
the input to peak 0.9 and multiplies the output by the original peak, which changes the result
for a non-linear network; musicsep feeds the decoded samples as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.mdx.params import MdxParams
from musicsep.model.mdx.session import INPUT_NAME
from musicsep.model.mdx.stft import istft, stft


class FrameReader(Protocol):
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames `[start, stop)` as float32 `(channels, stop - start)`, zeros outside the track."""


#: The spectrogram's lowest bins the reference sets to zero before the model.
ZEROED_BINS = 3


class MdxSeparator:
    """A loaded MDX-Net ONNX model: `sources = [primary, secondary]` (e.g. instrumental, vocals)."""

    samplerate = 44100
    audio_channels = 2
    normalize = False  # the reference feeds the samples unscaled (no whole-track mean/std pass)

    def __init__(
        self,
        name: str,
        session,
        params: MdxParams,
        *,
        device: str,
        fixed_batch: int | None = None,
        weight_bytes: int = 0,
        lanes: int = 1,
    ) -> None:
        self.name = name
        self.params = params
        self.device = device
        self.precision = "fp32"  # the graph's own type; onnxruntime does not autocast
        self.sources = [params.primary, params.secondary]
        self.weight_bytes = weight_bytes  # the file's size: what the loaded session roughly holds
        self._session = session
        self._fixed_batch = fixed_batch
        self.lanes = lanes  # batches run at once (session.cpu_lanes says why)
        self.runtime = "onnxruntime"  # or "openvino" (load_mdx, mdx/runtimes.py)
        self.runtime_choice = None  # how `auto` chose it (a runtime.Choice), when it did

    def prepare(self, frames: int, stems: list[str], options: object = None) -> MdxPass:
        """A pass over `frames` frames giving `stems`; a pass option's `overlap` and
        `batch_size` (PassOptions) override the model's defaults, the others do not apply."""
        unknown = [stem for stem in stems if stem not in self.sources]
        if unknown:
            raise InvalidOptions(
                f"stem '{unknown[0]}' is not produced by {self.name}; it produces: {', '.join(self.sources)}"
            )
        overlap = getattr(options, "overlap", self.params.overlap)
        batch_size = getattr(options, "batch_size", self.params.batch_size)
        if not 0 <= overlap < 1:
            raise InvalidOptions("overlap must be at least 0 and below 1")
        if batch_size < 1:
            raise InvalidOptions("batch size must be at least 1")
        return MdxPass(self, frames, list(stems), overlap, self._fixed_batch or batch_size)

    def spectrum(self, chunks: np.ndarray) -> np.ndarray:
        """`(batch, 2, chunk)` audio -> the model's input `(batch, 4, dim_f, dim_t)` float32."""
        p = self.params
        spec = stft(chunks, p.n_fft, p.hop)[:, :, : p.dim_f]  # (batch, channel, dim_f, dim_t)
        x = np.stack([spec.real, spec.imag], axis=2).reshape(len(chunks), 4, p.dim_f, spec.shape[-1])
        x[:, :, :ZEROED_BINS] = 0
        return x

    def waveform(self, spec: np.ndarray) -> np.ndarray:
        """The model's output `(batch, 4, dim_f, dim_t)` -> `(batch, 2, chunk)` float32 audio."""
        p = self.params
        batch, _, bins, frames = spec.shape
        pairs = spec.reshape(batch, 2, 2, bins, frames)
        full = np.zeros((batch, 2, p.n_fft // 2 + 1, frames), np.complex64)
        full[:, :, :bins].real = pairs[:, :, 0]
        full[:, :, :bins].imag = pairs[:, :, 1]
        return istft(full, p.n_fft, p.hop, p.chunk)

    def primary(self, chunks: np.ndarray) -> np.ndarray:
        """`(batch, 2, chunk)` audio -> the primary stem of each chunk, `(batch, 2, chunk)`."""
        return self.waveform(self.run_model(self.spectrum(chunks)))

    def run_model(self, spec: np.ndarray) -> np.ndarray:
        """The graph on a batch of spectrograms; with denoise, `-f(-x)/2 + f(x)/2` in one call."""
        count = spec.shape[0]
        if self.params.denoise:
            spec = np.concatenate([spec, -spec])
        outputs = []
        step = self._fixed_batch or spec.shape[0]
        for start in range(0, spec.shape[0], step):
            part = spec[start : start + step]
            if len(part) < step:  # a graph with a fixed batch gets zero-padded batches
                part = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), np.float32)])
            outputs.append(self._session.run(None, {INPUT_NAME: part})[0][: len(spec) - start])
        out = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        if self.params.denoise:
            return 0.5 * out[:count] - 0.5 * out[count:]
        return out


class MdxPass:
    """One separation of one track, in the shape the engine drives (`chunks`, `blocks`)."""

    def __init__(self, separator: MdxSeparator, frames: int, stems: list[str], overlap: float, batch_size: int) -> None:
        p = separator.params
        self._separator = separator
        self._frames = frames
        self._stems = stems
        self._overlap = overlap
        self._batch_size = batch_size
        generated = p.chunk - 2 * p.trim
        # The reference's padded track: trim zeros, the track, then zeros up to past a whole
        # generated chunk; offsets every step from 0 to its end.
        self._padded = p.trim + frames + generated + p.trim - frames % generated
        self._step = max(1, int((1 - overlap) * p.chunk))
        # Chunks that start past the track's end touch only the padding cut afterwards: the
        # reference runs them (about one per track); skipping them changes no output sample.
        self.offsets = [offset for offset in range(0, self._padded, self._step) if offset < p.trim + frames]
        self.chunks = len(self.offsets)

    def blocks(self, reader: FrameReader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        """Yield `(len(stems), 2, n)` float32 blocks covering `[0, frames)` in order, one per chunk
        (after each chunk, what precedes the next chunk's offset is final).

        The separator's `lanes` next batches run (STFT, model, inverse STFT) on worker threads
        while this one's output is added up and its blocks go to the caller (who encodes and
        writes them): the model is not idle while the stems are written, and on the CPU two
        chunks run at once (session.cpu_lanes). The reads stay on the caller's thread, the
        output is added in chunk order, and the workers have finished when this returns."""
        sep, p = self._separator, self._separator.params
        total = np.zeros((2, p.chunk), np.float32)  # padded-track samples [base, base + chunk)
        weights = np.zeros(p.chunk, np.float32)
        upcoming = iter(range(0, self.chunks, self._batch_size))
        running: deque[tuple[int, Future[np.ndarray]]] = deque()
        with ThreadPoolExecutor(max_workers=sep.lanes, thread_name_prefix="mdx-model") as workers:

            def start_next() -> None:
                first = next(upcoming, None)
                if first is not None:
                    running.append((first, workers.submit(sep.primary, self._audio(reader, first))))

            for _ in range(sep.lanes):
                start_next()
            while running:
                first, future = running.popleft()
                primary = future.result()
                start_next()
                for index in range(first, first + len(primary)):
                    offset = self.offsets[index]
                    length = min(p.chunk, self._padded - offset)
                    window = np.hanning(length) if self._overlap else np.ones(length)
                    total[:, :length] += primary[index - first, :, :length] * window
                    weights[:length] += window
                    final = self.offsets[index + 1] if index + 1 < self.chunks else offset + length
                    block = self._finish(reader, offset, final - offset, total, weights)
                    on_chunk()
                    if block is not None:
                        yield block

    def _audio(self, reader: FrameReader, first: int) -> np.ndarray:
        """The batch of chunks starting at chunk `first`, `(batch, 2, chunk)`."""
        trim, chunk = self._separator.params.trim, self._separator.params.chunk
        batch = self.offsets[first : first + self._batch_size]
        return np.stack([reader.read(offset - trim, offset - trim + chunk) for offset in batch])

    def _finish(
        self, reader: FrameReader, base: int, count: int, total: np.ndarray, weights: np.ndarray
    ) -> np.ndarray | None:
        """Stems for the final padded samples `[base, base + count)` (None when all of them are
        padding), then shift the accumulator to start at `base + count`."""
        p = self._separator.params
        start = max(base, p.trim)  # padded position -> track frame: minus trim
        stop = min(base + count, p.trim + self._frames)
        block = None
        if stop > start:
            primary = total[:, start - base : stop - base] / weights[start - base : stop - base]
            block = np.empty((len(self._stems), 2, stop - start), np.float32)
            for row, stem in enumerate(self._stems):
                if stem == self._separator.params.primary:
                    block[row] = primary
                else:
                    mix = reader.read(start - p.trim, stop - p.trim)
                    block[row] = mix - primary * np.float32(p.compensate)
        total[:, :-count] = total[:, count:]
        total[:, -count:] = 0
        weights[:-count] = weights[count:]
        weights[-count:] = 0
        return block


def load_mdx(
    path: Path,
    params: MdxParams,
    *,
    name: str,
    device: str = "cpu",
    precision: str = "fp32",
    runtime: str = "onnxruntime",
    runtime_cache: Path | None = None,
) -> MdxSeparator:
    """Open `path` (an MDX-Net `.onnx`) with `params` on `device` (`cpu`, `cuda`, `cuda:N`, `auto`).

    ONNX graphs run in their own type (fp32): `precision` other than fp32 is accepted and runs
    fp32, and the separator's `precision` says so. `runtime` picks the CPU runtime (`onnxruntime`,
    `openvino`, or `auto`: measured once and cached under `runtime_cache`; mdx/runtimes.py); the
    separator's `runtime` says which ran. A missing, truncated or non-MDX-Net file, or one whose
    declared shapes contradict `params`, is ModelUnavailable; a CUDA device without
    onnxruntime's CUDA provider is DeviceUnavailable.
    """
    from musicsep.model.mdx.runtimes import open_mdx_graph

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ModelUnavailable(f"model '{name}' has no readable weight file") from None
    graph = open_mdx_graph(path, params, name=name, device=device, runtime=runtime, cache_dir=runtime_cache)
    on_gpu = graph.session.get_providers()[0] == "CUDAExecutionProvider"
    ran_on = ("cuda" if device == "auto" else device) if on_gpu else "cpu"
    separator = MdxSeparator(
        name, graph.session, params, device=ran_on, fixed_batch=graph.fixed_batch, weight_bytes=size, lanes=graph.lanes
    )
    separator.runtime = graph.runtime
    separator.runtime_choice = graph.choice
    return separator
