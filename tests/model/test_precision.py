"""Fast mode: bf16 autocast stays close to exact fp32 output; `auto` picks by what the CPU can do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicsep.model.loading import ModelLoader
from musicsep.model.separate import SeparationRequest, separate_file


@pytest.fixture(scope="module")
def loader(tiny_model_repo):
    return ModelLoader(repo=tiny_model_repo, offline=True)


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def test_bf16_stems_are_close_to_fp32(loader, make_clip, tmp_path):
    clip = make_clip(seconds=6.0)
    stems = {}
    for precision in ("fp32", "bf16"):
        result = separate_file(
            clip,
            tmp_path / precision,
            SeparationRequest(model="tiny_htdemucs", format="float32", clip="none", device="cpu", precision=precision),
            loader=loader,
        )
        assert result.precision == precision
        stems[precision] = {name: sf.read(str(path), dtype="float64")[0] for name, path in result.stems.items()}
    for name, exact in stems["fp32"].items():
        fast = stems["bf16"][name]
        assert not np.array_equal(fast, exact)  # autocast really ran
        assert _sdr(exact, fast) > 25.0  # bf16 has 8 mantissa bits: ~48 dB at best per op


def test_auto_precision_follows_the_cpu(loader):
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fast_cpu = " amx_bf16" in flags or " avx512_bf16" in flags
    separator = loader.get("tiny_hdemucs", device="cpu", precision="auto")
    assert separator.precision == ("bf16" if fast_cpu else "fp32")
