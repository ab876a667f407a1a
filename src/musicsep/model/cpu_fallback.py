"""Out-of-memory recovery for the UVR / MSST families: on device out-of-memory, go on on the CPU.

model/recovery.py retries a Demucs chunk with a smaller batch because it owns Demucs's forward
pass; the families own theirs (onnxruntime sessions, MSST modules), so recovery here works from
outside a pass: when a pass fails with out-of-memory on a GPU, the model is loaded again on the
CPU and the track is run again from its start, the frames already handed out skipped (the chunking
does not depend on the device, so the rest continues exactly where it stopped). The chunks done a
second time are not reported again, so progress never goes back; cancel is seen again from the
first new chunk on. The loader sees the fallback (`fell_back`) and loads the model on the device
again for the next request (model/loading.py).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA out-of-memory, or onnxruntime's allocation failure (it has no error type of its own)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate memory" in text


class CpuFallbackSeparator:
    """A family separator (`inner`) that moves to the CPU when its device runs out of memory.

    Every other attribute (name, samplerate, audio_channels, sources, normalize, ...) is the
    inner separator's.
    """

    def __init__(self, load: Callable[[str, str], object], device: str, precision: str) -> None:
        self._load = load
        self.inner = load(device, precision)
        self.device = str(getattr(self.inner, "device", device))
        self.precision = precision
        self.fell_back = False
        #: Plain-words notes of every recovery, read by the engine into the result.
        self.recoveries: list[str] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.__dict__["inner"], name)

    def prepare(self, frames: int, stems: list[str], options: object = None) -> _FallbackPass:
        return _FallbackPass(self, frames, list(stems), options)

    def move_to_cpu(self) -> None:
        with self._lock:
            if self.device == "cpu":
                return
            self.recoveries.append(f"out of {self.device} memory; continuing on the CPU")
            self.inner = self._load("cpu", "fp32")
            self.device = "cpu"
            self.precision = "fp32"
            self.fell_back = True


class _FallbackPass:
    def __init__(self, separator: CpuFallbackSeparator, frames: int, stems: list[str], options: object) -> None:
        self._separator = separator
        self._frames = frames
        self._stems = stems
        self._options = options
        self._pass = separator.inner.prepare(frames, stems, options)
        self.chunks = self._pass.chunks

    def blocks(self, reader, on_chunk: Callable[[], None]) -> Iterator[np.ndarray]:
        emitted = 0
        reported = 0

        def count() -> None:
            nonlocal reported
            reported += 1
            on_chunk()

        try:
            for block in self._pass.blocks(reader, count):
                emitted += block.shape[-1]
                yield block
            return
        except Exception as exc:
            if not is_out_of_memory(exc) or self._separator.device == "cpu":
                raise
        self._separator.move_to_cpu()
        self._pass = self._separator.inner.prepare(self._frames, self._stems, self._options)
        replayed = 0

        def after_replay() -> None:
            nonlocal replayed
            replayed += 1
            if replayed > reported:
                on_chunk()

        position = 0
        for block in self._pass.blocks(reader, after_replay):
            start, position = position, position + block.shape[-1]
            if position > emitted:
                yield block[..., max(0, emitted - start) :]
