"""Taking a number of frames off the front of a queue of blocks: what every streaming combiner does.

The Demucs lanes (torch tensors) and the ensemble's members (numpy arrays) both hold finished
output as a list of `(stems, channels, n)` blocks of uneven lengths and hand out exactly the frames
every producer has reached; `concat` is the array library's join along the last axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Block = TypeVar("Block", bound=Any)


def take_frames(queue: list[Block], count: int, concat: Callable[[list[Block]], Block]) -> Block:
    """Pop the first `count` frames from `queue` (which must hold that many), splitting a block if needed."""
    parts, need = [], count
    while need:
        head = queue[0]
        if head.shape[-1] <= need:
            parts.append(queue.pop(0))
            need -= head.shape[-1]
        else:
            parts.append(head[..., :need])
            queue[0] = head[..., need:]
            need = 0
    return parts[0] if len(parts) == 1 else concat(parts)
