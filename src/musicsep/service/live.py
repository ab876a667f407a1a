"""Live stems: each stem's finished samples readable in fixed segments while the job runs.

The engine hands out every stem's final samples block by block (model/live.py); `LiveSpool`
cuts them into segments of `SEGMENT_FRAMES` frames (segment i holds frames [i*S, (i+1)*S), the
last one shorter) and gives each completed segment, then the new frontier, to the deployment's
`LiveAudio` (service/interfaces.py): files in the job's folder (`LocalLiveAudio`, below) or one
object per segment in the bucket (scaleout/live_s3.py). Only then is the frontier announced (a
`progress` event with `ready_frames`), so a reader that sees it can always read the segment.

Fixed segments addressed by index, rather than a growing file with Range or one long stream:
every request is small, complete and cacheable by index; a reader that stops holds nothing on
the server (no open response to buffer into); the same addressing works from a local file and
from a bucket, where an object cannot grow; and a browser decodes each one as a whole WAV.
Memory: one segment per stem in the spool (512 KiB of stereo float32), one per reader.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from musicsep.service.artifacts import JobFolders
    from musicsep.service.interfaces import LiveAudio

#: Frames per live segment (about 1.49 s at 44.1 kHz): small enough that playback starts soon
#: after the first finished block, large enough that a song is a few hundred requests.
SEGMENT_FRAMES = 65536

#: Stem names that may become file or key names (the model's source names are all like this).
_STEM = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@dataclass
class LiveState:
    """Where a job's live stems stand; kept beside the segments and rewritten at each frontier."""

    samplerate: int
    channels: int
    stems: list[str]
    level: str  # final | clamped | unscaled (model/live.py)
    total_frames: int
    ready_frames: int = 0
    #: Every frame is spooled: no more segments will come.
    done: bool = False
    #: When the job ended (Unix seconds), None while it runs: the grace period counts from here.
    ended_at: float | None = None
    segment_frames: int = field(default=SEGMENT_FRAMES)

    @property
    def segments_ready(self) -> int:
        """Complete segments, plus the last short one once every frame is spooled."""
        full, rest = divmod(self.ready_frames, self.segment_frames)
        return full + (1 if self.done and rest else 0)

    def ready(self, index: int) -> bool:
        return 0 <= index < self.segments_ready

    def past_end(self, index: int) -> bool:
        return index * self.segment_frames >= self.total_frames

    def frames_of(self, index: int) -> int:
        """How many frames segment `index` holds (the last one fewer)."""
        start = index * self.segment_frames
        return max(0, min(self.segment_frames, self.total_frames - start))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LiveState:
        return cls(**json.loads(data))


def check_stem(name: str) -> str:
    """`name`, when it may become a file or key name (a request's stem is also checked against
    the spool's own list before any read); ValueError otherwise."""
    if not _STEM.match(name):
        raise ValueError("not a stem name")
    return name


class LiveSpool:
    """A `model.live.LiveSink` that keeps one job's live segments in a `LiveAudio`.

    Blocking, on the engine's thread. `announce(ready_frames, samplerate)` is called after each
    new frontier has been stored (the service's progress events carry it)."""

    def __init__(
        self, store: LiveAudio, job_id: str, level: str, announce: Callable[[int, int], None] | None = None
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._level = level
        self._announce = announce
        self._state: LiveState | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._filled = 0

    def begin(self, samplerate: int, channels: int, stems: list[str], frames: int) -> None:
        self._store.remove(self._job_id)  # an earlier attempt's segments
        self._state = LiveState(samplerate, channels, [check_stem(s) for s in stems], self._level, frames)
        self._buffers = {name: np.empty((SEGMENT_FRAMES, channels), dtype="<f4") for name in stems}
        self._filled = 0
        self._store.put_state(self._job_id, self._state)

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        assert self._state is not None, "begin() first"
        frames = next(iter(blocks.values())).shape[-1] if blocks else 0
        offset = 0
        while offset < frames:
            take = min(SEGMENT_FRAMES - self._filled, frames - offset)
            for name, block in blocks.items():
                self._buffers[name][self._filled : self._filled + take] = block[:, offset : offset + take].T
            self._filled += take
            offset += take
            if self._filled == SEGMENT_FRAMES:
                self._flush(done=False)

    def end(self) -> None:
        assert self._state is not None, "begin() first"
        self._flush(done=True)

    def _flush(self, *, done: bool) -> None:
        state = self._state
        assert state is not None
        index = state.ready_frames // SEGMENT_FRAMES
        if self._filled:
            for name, buffer in self._buffers.items():
                self._store.put_segment(self._job_id, name, index, buffer[: self._filled].tobytes())
        state.ready_frames += self._filled
        state.done = done
        self._filled = 0
        self._store.put_state(self._job_id, state)
        if self._announce is not None:
            self._announce(state.ready_frames, state.samplerate)


def wav_header(frames: int, channels: int, samplerate: int) -> bytes:
    """A WAV header for `frames` of interleaved little-endian float32 (format tag 3, IEEE float),
    with the `fact` chunk the WAV specification asks of every non-PCM file."""
    data = frames * channels * 4
    fmt = struct.pack("<HHIIHH", 3, channels, samplerate, samplerate * channels * 4, channels * 4, 32)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + (8 + len(fmt)) + 12 + (8 + data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, frames)
        + b"data"
        + struct.pack("<I", data)
    )


class LocalLiveAudio:
    """Live segments on local disk: `jobs/<id>/live/<stem>.f32` (segments appended in order, so
    segment i is at byte i * S * channels * 4) and `state.json` beside them, replaced whole
    (write, then rename) so a reader never sees half of it. Readers in other processes on the
    same data dir (scale-out without a bucket) read the same files."""

    def __init__(self, folders: JobFolders) -> None:
        self.folders = folders

    def _dir(self, job_id: str) -> Path:
        return self.folders.job_dir(job_id) / "live"

    def put_segment(self, job_id: str, stem: str, index: int, data: bytes) -> None:
        path = self._dir(job_id) / f"{check_stem(stem)}.f32"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:  # segments come in order; `LiveSpool.begin` removed older ones
            handle.write(data)

    def put_state(self, job_id: str, state: LiveState) -> None:
        folder = self._dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / "state.json.part"
        part.write_bytes(state.to_json())
        os.replace(part, folder / "state.json")

    def state(self, job_id: str) -> LiveState | None:
        try:
            return LiveState.from_json((self._dir(job_id) / "state.json").read_bytes())
        except FileNotFoundError:
            return None

    def segment(self, job_id: str, state: LiveState, stem: str, index: int) -> bytes:
        """Segment `index` of `stem` (interleaved float32); KeyError when it is gone."""
        size = state.frames_of(index) * state.channels * 4
        try:
            with (self._dir(job_id) / f"{check_stem(stem)}.f32").open("rb") as handle:
                data = os.pread(handle.fileno(), size, index * state.segment_frames * state.channels * 4)
        except FileNotFoundError:
            raise KeyError(stem) from None
        if len(data) != size:
            raise KeyError(stem)
        return data

    def ended(self, job_id: str, at: float) -> None:
        state = self.state(job_id)
        if state is not None and state.ended_at is None:
            state.ended_at = at
            self.put_state(job_id, state)

    def sweep(self, ended_before: float) -> int:
        """Remove the live segments of jobs that ended before `ended_before`; how many."""
        removed = 0
        for state_file in self.folders.root.glob("*/live/state.json"):
            try:
                state = LiveState.from_json(state_file.read_bytes())
            except (FileNotFoundError, ValueError, TypeError):
                continue
            if state.ended_at is not None and state.ended_at < ended_before:
                shutil.rmtree(state_file.parent, ignore_errors=True)
                removed += 1
        return removed

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)
