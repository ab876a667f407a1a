"""A stem's live audio for both clients: its segments parsed into float32 blocks, without numpy.

The server cuts each stem into fixed segments (docs/server.md, "Live stems"): segment i is
`GET /api/v1/jobs/{id}/stems/{stem}/live/{i}?wait=…`, a float32 WAV that the server sends once it
is final, waiting up to `wait` seconds for it (then 425: ask again). The iterators in sync.py
and aio.py walk the indexes from 0: 200 is the next block, 425 asks again, 416 is the end of the
track, and 410 (the job was cancelled or failed) raises the server's error with its reason.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from typing import Any

from musicsep.clients.errors import ClientError, ServerError

#: Seconds the server is asked to wait for each segment (its maximum is 30).
LIVE_WAIT_S = 30.0


@dataclass(frozen=True)
class LiveBlock:
    """One segment of a stem: `frames` frames of `channels` interleaved float32 `samples`."""

    index: int
    frames: int
    channels: int
    samplerate: int
    samples: array  # array('f'), interleaved: frame 0's channels, then frame 1's, …
    #: `final`, `unscaled` (clip rescale: the finished file is divided by the stem's peak) or `clamped`.
    level: str

    def numpy(self) -> Any:
        """The samples as a `(frames, channels)` float32 array (soundfile's layout); needs numpy."""
        import numpy as np

        return np.frombuffer(self.samples, dtype=np.float32).reshape(self.frames, self.channels)


def live_path(job_id: str, stem: str, index: int, wait_s: float = LIVE_WAIT_S) -> str:
    return f"/api/v1/jobs/{job_id}/stems/{stem}/live/{index}?wait={wait_s:g}"


def parse_float_wav(data: bytes, index: int, level: str) -> LiveBlock:
    """A float32 WAV (format tag 3, or WAVE_FORMAT_EXTENSIBLE holding float) → a LiveBlock."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ClientError("the live segment is not a WAV file")
    position, fmt, body = 12, None, None
    while position + 8 <= len(data):
        kind, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        payload = data[position + 8 : position + 8 + size]
        if kind == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", payload)
        elif kind == b"data":
            body = payload
            break
        position += 8 + size + (size & 1)
    if fmt is None or body is None:
        raise ClientError("the live segment's WAV has no fmt or data chunk")
    tag, channels, samplerate, _, _, bits = fmt
    if tag not in (3, 0xFFFE) or bits != 32 or channels < 1:
        raise ClientError(f"the live segment is not float32 (format {tag}, {bits} bits)")
    samples = array("f")
    samples.frombytes(body[: len(body) - len(body) % 4])
    if sys.byteorder == "big":
        samples.byteswap()
    return LiveBlock(index, len(samples) // channels, channels, samplerate, samples, level)


def live_step(status: int, body: bytes, headers: Any, index: int) -> LiveBlock | bool:
    """What one segment's answer means: the block (200), True to ask again (425), False at the
    end of the track (416); anything else raises the server's error (410: cancelled or failed,
    with the reason)."""
    if status == 200:
        return parse_float_wav(body, index, headers.get("x-musicsep-live-level", "final"))
    if status == 425:
        return True
    if status == 416:
        return False
    raise ServerError.from_body(status, body, headers.get("retry-after"))


def stalled(job_id: str, stem: str, index: int, waits: int) -> ClientError:
    """Why a stream of a stem gave up: nothing new after `waits` waits in a row."""
    return ClientError(
        f"segment {index} of {stem} of job {job_id} was not ready after {waits} waits of {LIVE_WAIT_S:g} s each"
    )
