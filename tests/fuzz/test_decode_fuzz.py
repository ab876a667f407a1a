"""The decoder front on the first 64 KiB of anything: only our own bad-input errors, no hang, no blow-up.

What an upload goes through before and while its job runs: the sniffer's 415 check, the header
probe (422 when damaged or too long) and the streamed decode. Inputs are arbitrary bytes, magic
numbers followed by garbage, and real WAV/RF64/W64/AIFF/AU/CAF/FLAC/Ogg Vorbis/Opus/MP3 files
(made by `media.seeds()`) with damaged headers. Every example must end in a decoded clip or
`UnsupportedFormat` / `InvalidAudio` / `AudioTooLong`; anything else (a PyAV error, a
`ValueError`, an assertion) is what the server would have turned into a 500 or `internal_error`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, example, given

from musicsep.model.audio import decode_blocks, probe
from musicsep.model.errors import AudioTooLong, InvalidAudio, UnsupportedFormat
from musicsep.service.inputs import head_bytes, refuse_unless_audio

from .budget import PEAK_RSS_GROWTH_LIMIT_MB, budget, peak_rss_mb, show, time_limit
from .media import front_bytes

BAD_INPUT = (UnsupportedFormat, InvalidAudio, AudioTooLong)
#: The duration cap the decode runs under (the server's is a setting): a 64 KiB file may claim hours.
MAX_DURATION_S = 30.0
SAMPLERATE = 44100


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("decode-fuzz") / "input"


def decode_front(data: bytes, path: Path) -> str:
    """What the server does with an upload's bytes; returns how it ended (for the statistics)."""
    path.write_bytes(data)
    try:
        refuse_unless_audio(head_bytes(path))
        probe(path)
        frames = 0
        for block in decode_blocks(path, samplerate=SAMPLERATE, channels=2, max_duration_s=MAX_DURATION_S):
            assert block.dtype == np.float32 and block.ndim == 2 and block.shape[0] == 2
            assert np.isfinite(block).all()
            frames += block.shape[1]
    except BAD_INPUT as exc:
        return type(exc).__name__
    assert frames <= MAX_DURATION_S * SAMPLERATE
    return "decoded"


#: Found by this harness: a CAF whose chunk size sends FFmpeg's demuxer to seek before the start
#: of the file; the seek on our Python file object raises a bare OSError(EINVAL), which
#: `_open_audio` once let through (it caught only av.FFmpegError): a 500 on upload.
CAF_SEEK_BEFORE_START = (
    b"caff\x00\x01\x00\x00desc\x00\x00\x00\x00\x00\x00\x00 \x00@\xbf@\x00\x00\x00\x00\x00alac"
    b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x01\x00\x00\x00\x00kuki"
    b"\x00\x00\x00\x00\x00\x00\x00"
)


def test_a_caf_that_seeks_before_its_start_is_invalid_audio(scratch: Path) -> None:
    assert decode_front(CAF_SEEK_BEFORE_START, scratch) in ("InvalidAudio", "UnsupportedFormat")


@budget(1500)
@given(data=front_bytes())
@example(data=CAF_SEEK_BEFORE_START)
def test_decoder_front_raises_only_bad_input_errors(scratch: Path, data: bytes) -> None:
    show(data=data)
    before = peak_rss_mb()
    with time_limit():
        event(decode_front(data, scratch))
    assert peak_rss_mb() - before < PEAK_RSS_GROWTH_LIMIT_MB, "one input made the decoder allocate too much"
