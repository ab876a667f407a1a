"""Streaming Demucs: `demucs.apply.apply_model(split=True)`'s arithmetic, emitted as it finishes.

`apply_model` keeps the whole output track and divides by the summed window weights at the end.
The chunk at offset `o` only touches samples `[o, o + segment)`, so once the chunk at `o_next` has
been added, no later chunk can change samples before `o_next`: they are final and can leave. Each
"lane" below is one model (one member of a bag, at one random shift) walking the track with
exactly apply_model's segment length, stride, triangular weights and padding; a combiner adds the
lanes like apply_model's bag and shift loops do. Memory is O(segment) instead of O(track).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import torch

from musicsep.model.frame_queue import take_frames


class FrameReader(Protocol):
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames `[start, stop)` as float32 `(channels, stop - start)`, zeros outside the track."""


@dataclass(frozen=True)
class PassOptions:
    shifts: int = 0
    overlap: float = 0.25
    segment: float | None = None
    transition_power: float = 1.0
    batch_size: int = 1
    jobs: int | None = None  # forward passes in flight at once; None: the separator's `jobs`


def _window(segment_length: int, transition_power: float) -> torch.Tensor:
    """apply_model's triangle, highest in the middle, normalised, raised to transition_power."""
    weight = torch.cat(
        [torch.arange(1, segment_length // 2 + 1), torch.arange(segment_length - segment_length // 2, 0, -1)]
    )
    return (weight / weight.max()) ** transition_power


class _Lane:
    """One model over the track delayed by `delay` frames (apply_model's shift trick), yielding
    finished output in track coordinates."""

    def __init__(
        self,
        model,
        forward: Callable,
        stem_index: list[int],
        frames: int,
        delay: int,
        options: PassOptions,
        jobs: int = 1,
    ) -> None:
        from demucs.htdemucs import HTDemucs

        self.model = model
        self._forward = forward
        self._stems = stem_index
        self._delay = delay
        self._length = frames + delay  # apply_model's `shifted` view: length + max_shift - offset
        segment = options.segment if options.segment is not None else model.segment
        self._segment_length = int(model.samplerate * segment)
        self._stride = int((1 - options.overlap) * self._segment_length)
        self._offsets = list(range(0, self._length, self._stride))
        self._weight = _window(self._segment_length, options.transition_power)
        self._user_segment = options.segment
        self._is_htdemucs = isinstance(model, HTDemucs)
        self._batch_size = options.batch_size
        self._jobs = jobs
        self._next = 0  # index of the next chunk to run
        self._base = 0  # lane coordinate of acc[..., 0]
        self._acc: torch.Tensor | None = None
        self._sum_weight = torch.zeros(0)
        self.frontier = 0  # track frames before this are final and already handed out

    @property
    def chunks(self) -> int:
        return len(self._offsets)

    @property
    def done(self) -> bool:
        return self._next >= len(self._offsets)

    def _valid_length(self, chunk_length: int) -> int:
        # Same choice as apply_model's inner (split=False) call.
        if self._is_htdemucs and self._user_segment is not None:
            return int(self._user_segment * self.model.samplerate)
        if hasattr(self.model, "valid_length"):
            return self.model.valid_length(chunk_length)
        return chunk_length

    def _read(self, reader: FrameReader, offset: int, chunk_length: int, valid: int) -> np.ndarray:
        # TensorChunk.padded: centred context of real neighbouring samples, zeros past the ends.
        start = offset - (valid - chunk_length) // 2
        return reader.read(start - self._delay, start - self._delay + valid)

    def step(self, reader: FrameReader) -> tuple[torch.Tensor, int]:
        """Run the next `jobs` batches of chunks; return (newly finished track frames (S, C, n),
        chunks run). Batches run side by side but are added in track order, as apply_model does."""
        batch = []
        first_valid = None
        wanted = self._batch_size * self._jobs
        while self._next + len(batch) < len(self._offsets) and len(batch) < wanted:
            offset = self._offsets[self._next + len(batch)]
            chunk_length = min(self._length - offset, self._segment_length)
            valid = self._valid_length(chunk_length)
            if first_valid is not None and valid != first_valid:
                break
            first_valid = valid
            batch.append((offset, chunk_length, self._read(reader, offset, chunk_length, valid)))
        groups = [
            np.stack([item[2] for item in batch[i : i + self._batch_size]])
            for i in range(0, len(batch), self._batch_size)
        ]
        outputs = [out for group in self._forward(self.model, groups) for out in group]
        for (offset, chunk_length, _), out in zip(batch, outputs, strict=True):
            self._accumulate(offset, _center_trim(out[self._stems], chunk_length))
        self._next += len(batch)
        return self._emit(), len(batch)

    def _accumulate(self, offset: int, chunk_out: torch.Tensor) -> None:
        chunk_length = chunk_out.shape[-1]
        end = offset + chunk_length - self._base
        if self._acc is None:
            self._acc = chunk_out.new_zeros(*chunk_out.shape[:-1], 0)
        if end > self._acc.shape[-1]:
            grow = end - self._acc.shape[-1]
            self._acc = torch.cat([self._acc, chunk_out.new_zeros(*chunk_out.shape[:-1], grow)], dim=-1)
            self._sum_weight = torch.cat([self._sum_weight, torch.zeros(grow)])
        start = offset - self._base
        weight = self._weight[:chunk_length]
        self._acc[..., start:end] += weight * chunk_out
        self._sum_weight[start:end] += weight

    def _emit(self) -> torch.Tensor:
        assert self._acc is not None
        final = self._offsets[self._next] if not self.done else self._length
        count = final - self._base
        out = self._acc[..., :count] / self._sum_weight[:count]
        self._acc = self._acc[..., count:]
        self._sum_weight = self._sum_weight[count:]
        self._base = final
        # Lane coordinates -> track coordinates: drop what falls in the shift's leading padding.
        skip = min(count, max(0, self._delay - (final - count)))
        self.frontier = max(0, final - self._delay)
        return out[..., skip:]


def _center_trim(tensor: torch.Tensor, length: int) -> torch.Tensor:
    from demucs.utils import center_trim

    return center_trim(tensor, length)


@dataclass
class _Member:
    model: object
    weights: list[float]  # this member's weight per requested stem
    lanes: list[_Lane]


class DemucsPass:
    """One separation of one track: all lanes of all bag members, combined as apply_model does."""

    def __init__(self, separator: DemucsSeparator, frames: int, stems: list[str], options: PassOptions) -> None:
        sources = separator.sources
        index = [sources.index(stem) for stem in stems]
        self.frames = frames
        self._shifts = options.shifts
        members, all_weights = separator.members()
        # Normalise by the summed weights of *all* members, like apply_model's `totals`; members
        # whose weights for the requested stems are all zero contribute nothing and are skipped.
        self._totals = [sum(weights[k] for weights in all_weights) for k in index]
        max_shift = int(0.5 * separator.samplerate)
        self._members: list[_Member] = []
        for model, weights in zip(members, all_weights, strict=True):
            # Draw shifts member by member, like apply_model's recursion, so a seeded `random`
            # reproduces Demucs's own output; drawn even for skipped members to keep the sequence.
            delays = [max_shift - random.randint(0, max_shift) for _ in range(options.shifts)] or [0]
            picked = [weights[k] for k in index]
            if not any(picked):
                continue
            jobs = options.jobs or separator.jobs
            lanes = [_Lane(model, separator.forward_many, index, frames, delay, options, jobs) for delay in delays]
            self._members.append(_Member(model, picked, lanes))
        self.chunks = sum(lane.chunks for member in self._members for lane in member.lanes)

    def blocks(self, reader: FrameReader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        lanes = [lane for member in self._members for lane in member.lanes]
        pending: dict[int, list[torch.Tensor]] = {id(lane): [] for lane in lanes}
        emitted = 0
        while emitted < self.frames:
            lane = min((lane for lane in lanes if not lane.done), key=lambda item: item.frontier)
            out, ran = lane.step(reader)
            if out.shape[-1]:
                pending[id(lane)].append(out)
            for _ in range(ran):
                on_chunk()
            ready = min(item.frontier for item in lanes)
            if ready > emitted:
                yield self._combine(pending, ready - emitted).numpy()
                emitted = ready

    def _combine(self, pending: dict[int, list[torch.Tensor]], count: int) -> torch.Tensor:
        estimate: torch.Tensor | float = 0.0
        for member in self._members:
            member_out: torch.Tensor | float = 0.0
            for lane in member.lanes:
                member_out = member_out + take_frames(pending[id(lane)], count, partial(torch.cat, dim=-1))
            if self._shifts:
                member_out = member_out / self._shifts
            weights = torch.tensor(member.weights, dtype=torch.float32)[:, None, None]
            estimate = estimate + member_out * weights
        totals = torch.tensor(self._totals, dtype=torch.float32)[:, None, None]
        return estimate / totals


class DemucsSeparator:
    """A loaded Demucs model or bag, on a device at a precision, ready to stream tracks."""

    normalize = True  # Demucs's Separator normalises the whole track by its mean and std.
    # Forward passes in flight at once on the CPU, each with threads/jobs intra-op threads. Two
    # single-threaded passes beat one two-threaded pass on a small or busy CPU (no OpenMP barrier
    # waits; bench/forward_speed.py `pair`) but hold two segments' activations (~+0.7 GB for
    # HTDemucs), so it is opt-in.
    jobs = 1

    def __init__(self, name: str, model, device: torch.device, precision: str = "fp32") -> None:
        self.name = name
        self.model = model
        self.device = device
        self.precision = precision
        self.samplerate = int(model.samplerate)
        self.audio_channels = int(model.audio_channels)
        self.sources = list(model.sources)
        self.compiled: dict[int, Callable] = {}  # id(member) -> torch.compile'd member (compile.py)
        # id(member) -> the member's network in another CPU runtime (demucs_runtime/), and the choice
        self.runtimes: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.runtime = "torch"
        self.runtime_choice = None
        self._pool = None
        self._pool_size = 0
        self._threads = 1

    def members(self) -> tuple[list, list[list[float]]]:
        from demucs.apply import BagOfModels

        if isinstance(self.model, BagOfModels):
            return list(self.model.models), [list(map(float, w)) for w in self.model.weights]
        return [self.model], [[1.0] * len(self.sources)]

    @property
    def max_segment(self) -> float:
        """HTDemucs cannot take segments longer than its training length."""
        from demucs.htdemucs import HTDemucs

        limits = [float(m.segment) for m in self.members()[0] if isinstance(m, HTDemucs)]
        return min(limits, default=float("inf"))

    def prepare(self, frames: int, stems: list[str], options: PassOptions) -> DemucsPass:
        return DemucsPass(self, frames, stems, options)

    def forward(self, model, batch: np.ndarray) -> torch.Tensor:
        """One forward pass over a batch of padded chunks; float32 on the CPU out."""
        x = torch.from_numpy(batch)
        network = self.runtimes.get(id(model)) if self.device.type == "cpu" else None
        if network is not None:  # the same call contract in OpenVINO: its own precision, no autocast
            with torch.inference_mode():
                return network(x)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode(), attention_through_sdpa(), autocast(self.device, self.precision):
            out = self.compiled.get(id(model), model)(x)
        return out.float().cpu()

    def forward_many(self, model, batches: list[np.ndarray]) -> list[torch.Tensor]:
        """Forward passes over several batches, side by side on the CPU when there are several."""
        if len(batches) == 1 or self.device.type != "cpu":
            return [self.forward(model, batch) for batch in batches]
        if self._pool is None or self._pool_size < len(batches):
            from concurrent.futures import ThreadPoolExecutor

            self._threads = torch.get_num_threads()
            self._pool_size = len(batches)
            self._pool = ThreadPoolExecutor(len(batches), thread_name_prefix="musicsep-forward")
        threads = max(1, self._threads // len(batches))

        def run(batch: np.ndarray) -> torch.Tensor:
            torch.set_num_threads(threads)  # this worker thread's intra-op pool
            return self.forward(model, batch)

        return list(self._pool.map(run, batches))


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


_sdpa_lock = threading.Lock()
_sdpa_users = 0
_fastpath_before = True


@contextlib.contextmanager
def attention_through_sdpa():
    """Keep `nn.MultiheadAttention` off its fused "fast path" while Demucs runs.

    In eval mode without autocast, PyTorch sends self-attention to `_native_multi_head_attention`,
    which materialises every 8 x 2688 x 2688 score matrix of HTDemucs's transformer with bmm and
    softmax. The regular path calls `scaled_dot_product_attention` (a flash kernel on CPU and
    CUDA): the same function within float rounding (3.6e-7 here), less memory, and measurably
    faster on this CPU (docs/performance.md). The switch is process-wide in PyTorch, so it is
    held while any separation runs and restored when the last one ends.
    """
    global _sdpa_users, _fastpath_before
    with _sdpa_lock:
        if _sdpa_users == 0:
            _fastpath_before = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
        _sdpa_users += 1
    try:
        yield
    finally:
        with _sdpa_lock:
            _sdpa_users -= 1
            if _sdpa_users == 0:
                torch.backends.mha.set_fastpath_enabled(_fastpath_before)
