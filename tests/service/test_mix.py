"""A mix is rendered block by block: its memory does not grow with the song's length, and its
WAV header, written before any sample, holds the exact length."""

from __future__ import annotations

import io
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf

from musicsep.service.mix import MixStream, UnknownStem, full_gains

RATE = 44100


def _stems(tmp_path, seconds: float) -> dict:
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("vocals", "drums"):
        paths[name] = tmp_path / f"{name}-{seconds:g}.wav"
        sf.write(str(paths[name]), 0.2 * rng.standard_normal((int(seconds * RATE), 2)), RATE, subtype="PCM_16")
    return paths


def _peak_bytes(paths: dict) -> tuple[int, int]:
    @contextmanager
    def files():
        yield paths

    stream = MixStream(files, {"vocals": 1.0, "drums": 0.5}, samplerate=RATE, clip="rescale", fmt="wav16")
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in stream)
        return total, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_mix_three_times_longer_needs_no_more_memory(tmp_path):
    short_bytes, short_peak = _peak_bytes(_stems(tmp_path, 10.0))
    long_bytes, long_peak = _peak_bytes(_stems(tmp_path, 30.0))
    assert long_bytes == 44 + 30 * RATE * 4 and short_bytes == 44 + 10 * RATE * 4
    assert long_peak < 1.2 * short_peak, (short_peak, long_peak)
    assert long_peak < 30 * RATE * 2 * 4 / 2, "well under the whole mix as float samples"


def test_the_header_holds_the_exact_length_and_the_mix_reads_back(tmp_path):
    paths = _stems(tmp_path, 2.0)

    @contextmanager
    def files():
        yield paths

    stream = MixStream(files, {"vocals": 1.0, "drums": 0.0}, samplerate=RATE, clip="clamp", fmt="wav24")
    stream.start()
    data = b"".join(stream)
    assert stream.length == len(data)
    mix, rate = sf.read(io.BytesIO(data), dtype="float32")
    vocals, _ = sf.read(str(paths["vocals"]), dtype="float32")
    assert rate == RATE and np.abs(mix - np.clip(vocals, -0.99, 0.99)).max() < 1e-4


def test_gains_cover_every_stem_and_an_unknown_one_is_refused():
    assert full_gains(["vocals", "drums"], {"drums": 0.0}) == {"vocals": 1.0, "drums": 0.0}
    with pytest.raises(UnknownStem, match="'piano'.*vocals, drums"):
        full_gains(["vocals", "drums"], {"piano": 1.0})
