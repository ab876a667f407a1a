"""Out-of-memory recovery around the forward pass: never restart a track because a GPU filled up.

On CUDA out-of-memory the chunk in hand is retried with half the segments per pass (sticky for
the rest of the run), and when one segment alone does not fit, the model moves to the CPU and the
track goes on from the same chunk. A shorter segment is not among the steps: HTDemucs pads every
segment to its training length, so a shorter one saves no memory there, and for the other models
it would change the output; both retries above leave the stems equal to a clean run's.
The move to the CPU is this separator's, for the track in hand: the loader sees the model has
left the device it was loaded for and loads it there again for the next request (model/loading.py).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from musicsep.model.demucs_stream import DemucsSeparator


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class RecoveringSeparator(DemucsSeparator):
    """A DemucsSeparator whose forward pass survives out-of-memory, and says what it did."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch: int | None = None
        #: Plain-words notes of every recovery, read by the engine into the result.
        self.recoveries: list[str] = []
        self._lock = threading.Lock()

    def forward(self, model, batch: np.ndarray) -> torch.Tensor:
        if self.max_batch is not None and len(batch) > self.max_batch:
            return self._split(model, batch, self.max_batch)
        try:
            return super().forward(model, batch)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            if not _is_out_of_memory(exc):
                raise
        _free_cuda_cache()
        if len(batch) > 1:
            half = len(batch) // 2
            self._note(f"out of memory with {len(batch)} segments per pass; retrying with {half}")
            self.max_batch = half
            return self._split(model, batch, half)
        if self.device.type == "cpu":
            raise MemoryError("out of memory on the CPU with one segment per pass")
        self._note(f"out of {self.device.type} memory with one segment; continuing on the CPU")
        self._move_to_cpu()
        return super().forward(model, batch)

    def _split(self, model, batch: np.ndarray, size: int) -> torch.Tensor:
        return torch.cat([self.forward(model, batch[i : i + size]) for i in range(0, len(batch), size)])

    def _move_to_cpu(self) -> None:
        with self._lock:
            self.model.to("cpu")
            self.device = torch.device("cpu")
            if self.precision == "fp16":  # half-precision autocast is a GPU path
                self.precision = "fp32"

    def _note(self, text: str) -> None:
        with self._lock:
            self.recoveries.append(text)


def _free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
