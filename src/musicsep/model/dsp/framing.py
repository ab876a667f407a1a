"""Where each output block's STFT frames and context come from, in track coordinates.

The dsp separator works on one global STFT grid: frame `t` is centred on sample `t * hop` and
spans `[t*hop - n_fft/2, t*hop + n_fft/2)`. Every mask value of frame `t` depends only on frames
`t - context .. t + context` (the median filters and the repetition search); frames beyond the
track are computed from the reader's zeros (the median filters) or never looked at (the search).
So a block can be separated from a bounded window of audio and give the same samples as the whole
track processed at once: there are no seams at block boundaries, and memory does not grow with
the track.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockFrames:
    """The frames one output block `[start, stop)` needs.

    `[first, last)` are the frames overlapping the block (their masks are computed and inverted);
    `[window_first, window_last)` are the frames within `context` of them that touch the track:
    where the repetition search looks for neighbours.
    """

    start: int
    stop: int
    first: int
    last: int
    window_first: int
    window_last: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def overlapping_frames(start: int, stop: int, n_fft: int, hop: int) -> tuple[int, int]:
    """Frames `[first, last)` whose windows overlap samples `[start, stop)`."""
    half = n_fft // 2
    return (start - half) // hop + 1, _ceil_div(stop + half, hop)


def plan_block(start: int, stop: int, frames: int, *, n_fft: int, hop: int, context: int) -> BlockFrames:
    """Frames and repetition context for output block `[start, stop)` of a `frames`-long track."""
    first, last = overlapping_frames(start, stop, n_fft, hop)
    track_first, track_last = overlapping_frames(0, frames, n_fft, hop)
    return BlockFrames(
        start=start,
        stop=stop,
        first=first,
        last=last,
        window_first=max(first - context, track_first),
        window_last=min(last + context, track_last),
    )


def block_bounds(frames: int, block: int) -> list[tuple[int, int]]:
    """Consecutive `[start, stop)` output blocks of `block` samples covering `[0, frames)`."""
    return [(start, min(start + block, frames)) for start in range(0, frames, block)]
