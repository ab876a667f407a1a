"""The loaded-model cache: least recently used first out, bounded by the memory of the weights.

Size is what a model's parameters and buffers take (`model_bytes`), on whatever device they are;
activations are not counted (they belong to a running separation, not to the cache). When a new
model takes the cache over its budget, idle models leave oldest-use first. A model that a running
job still holds is never dropped: dropping it would free nothing (the job keeps it alive) and the
next job asking for it would load a second copy beside the first. "Still held" is read from the
object itself: the cache lets go of its own reference and keeps a weak one; if the weak one still
answers, someone else holds the model, and it goes back in its place. No caller has to sign a
model out or in, so the CLI, the pipeline and the Celery worker need nothing special.

A single model larger than the whole budget is still loaded and kept (a job needs it): the
budget then holds that model alone.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


def model_bytes(model: Any) -> int:
    """Bytes of a torch module's parameters and buffers (a bag: all its members)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


class ModelCache:
    """Thread-safe; the lock guards the bookkeeping only (loading happens outside it)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> list[Hashable]:
        """Keep `value` as the most recently used; returns the keys it pushed out."""
        with self._lock:
            self._entries[key] = (value, nbytes)
            self._entries.move_to_end(key)
            del value
            return self._shrink(keep=key)

    def drop(self, keys: list[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def total_bytes(self) -> int:
        with self._lock:
            return self._total()

    def _total(self) -> int:
        return sum(nbytes for _, nbytes in self._entries.values())

    def _shrink(self, keep: Hashable) -> list[Hashable]:
        evicted: list[Hashable] = []
        held: list[tuple[Hashable, Any, int]] = []
        for key in list(self._entries):  # oldest use first
            if self._total() + sum(nbytes for _, _, nbytes in held) <= self.budget_bytes:
                break
            if key == keep:
                continue
            entry = self._entries.pop(key)
            alive, nbytes = weakref.ref(entry[0]), entry[1]
            del entry  # the cache's own reference: if nothing else holds the model, it is freed now
            value = alive()
            if value is None:
                evicted.append(key)
            else:  # a running job holds it: it stays, and stays counted
                held.append((key, value, nbytes))
            del value
        for key, value, nbytes in reversed(held):  # back where they were, oldest use first
            self._entries[key] = (value, nbytes)
            self._entries.move_to_end(key, last=False)
        return evicted
