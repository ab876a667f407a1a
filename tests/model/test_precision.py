"""Fast mode: bf16 autocast stays close to exact fp32 output where the CPU runs bf16; `auto` picks
by what the CPU can do, and a reduced precision the CPU would only emulate runs fp32 instead."""

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


def _native_bf16() -> bool:
    """Read independently of the code under test: the flags oneDNN's bf16 kernels need."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " amx_bf16" in flags or " avx512_bf16" in flags


def test_bf16_stems_are_close_to_fp32(loader, make_clip, tmp_path):
    if not _native_bf16():
        pytest.skip("this CPU has no native bf16: a bf16 request runs fp32 (the next test)")
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


def test_a_bf16_request_on_a_cpu_without_bf16_runs_fp32_and_says_so(loader, make_clip, tmp_path):
    if _native_bf16():
        pytest.skip("this CPU runs bf16 natively: the request runs bf16 (the test above)")
    clip = make_clip(seconds=4.0)
    request = dict(model="tiny_htdemucs", format="float32", clip="none", device="cpu")
    asked = separate_file(clip, tmp_path / "bf16", SeparationRequest(**request, precision="bf16"), loader=loader)
    exact = separate_file(clip, tmp_path / "fp32", SeparationRequest(**request, precision="fp32"), loader=loader)
    assert asked.precision == "fp32"
    for name, path in exact.stems.items():
        assert np.array_equal(sf.read(str(asked.stems[name]))[0], sf.read(str(path))[0])


@pytest.mark.parametrize(
    ("flags", "bf16", "fp16"),
    [
        ("fpu avx2 fma f16c", False, False),  # an AVX2-only EPYC: f16c converts, it does not compute
        ("avx2 avx512f avx512bw avx512_vnni", False, False),  # AVX-512 without bf16 (Skylake-SP)
        ("avx512f avx512_bf16 avx512_vnni", True, False),  # Zen 4 / Zen 5
        ("avx512_bf16 avx512_fp16 amx_bf16 amx_tile", True, True),  # Sapphire Rapids
    ],
)
def test_native_precisions_are_read_from_whole_cpu_flags(flags, bf16, fp16):
    from musicsep.model.devices import cpu_runs_natively

    assert cpu_runs_natively("bf16", flags) is bf16
    assert cpu_runs_natively("fp16", flags) is fp16


def test_auto_precision_follows_the_cpu(loader):
    separator = loader.get("tiny_hdemucs", device="cpu", precision="auto")
    assert separator.precision == ("bf16" if _native_bf16() else "fp32")
