"""An MDX-Net separator driven by the engine (`separate_file`): files, progress per chunk, cancel.

The loader here hands out one `load_mdx` separator (the catalog and folder wiring is the
loader's, tested with it); everything after `resolve` is the real engine: decode, spill, pass,
stem writers.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf

from model.mdx_graphs import build_mdx_onnx
from musicsep.model.errors import Cancelled
from musicsep.model.mdx import MdxParams, load_mdx
from musicsep.model.separate import SeparationRequest, separate_file

SMALL = MdxParams(n_fft=512, dim_f=128, dim_t=16, hop=256, compensate=1.035, primary="instrumental")
FRAMES = 30_001


class OneModelLoader:
    def __init__(self, separator) -> None:
        self.separator = separator

    def resolve(self, name, **_):
        return self.separator, None


@pytest.fixture(scope="module")
def separator(tmp_path_factory):
    path = build_mdx_onnx(tmp_path_factory.mktemp("mdx") / "UVR-MDX-NET-Inst_HQ_3.onnx", SMALL, size="tiny")
    return load_mdx(path, SMALL, name="UVR-MDX-NET-Inst_HQ_3")


@pytest.fixture
def track(tmp_path):
    audio = (0.1 * np.random.default_rng(5).standard_normal((FRAMES, 2))).astype(np.float32)  # within full scale
    path = tmp_path / "song.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")
    return path, audio.T


def test_separate_file_writes_both_stems_and_reports_every_chunk(separator, track, tmp_path):
    path, audio = track
    reports = []
    request = SeparationRequest(model="UVR-MDX-NET-Inst_HQ_3", format="float32", clip="none")
    result = separate_file(
        path, tmp_path / "out", request, loader=OneModelLoader(separator), on_progress=reports.append
    )
    assert sorted(result.stems) == ["instrumental", "vocals"]
    instrumental, _ = sf.read(result.stems["instrumental"], dtype="float32")
    vocals, _ = sf.read(result.stems["vocals"], dtype="float32")
    assert instrumental.shape == vocals.shape == (FRAMES, 2)
    np.testing.assert_allclose(vocals.T, audio - instrumental.T * np.float32(1.035), atol=1e-6)
    chunks = separator.prepare(FRAMES, ["instrumental"]).chunks
    separation = [report for report in reports if report.stage == "separate"]
    assert {report.chunks for report in separation} == {chunks} and separation[-1].chunk == chunks
    assert reports[-1].percent == 100


def test_two_stems_vocals_gives_vocals_and_no_vocals(separator, track, tmp_path):
    path, audio = track
    request = SeparationRequest(two_stems="vocals", format="float32", clip="none")
    result = separate_file(path, tmp_path / "out", request, loader=OneModelLoader(separator))
    vocals, _ = sf.read(result.stems["vocals"], dtype="float32")
    rest, _ = sf.read(result.stems["no_vocals"], dtype="float32")
    np.testing.assert_allclose(rest * np.float32(1.035), audio.T - vocals, atol=1e-5)


def test_cancel_during_the_pass_leaves_no_files(separator, track, tmp_path):
    path, _ = track
    cancel = threading.Event()
    chunks_done = []

    def on_progress(report):
        if report.stage == "separate":
            chunks_done.append(report.chunk)
            if report.chunk >= 2:
                cancel.set()

    with pytest.raises(Cancelled):
        separate_file(
            path,
            tmp_path / "out",
            SeparationRequest(),
            loader=OneModelLoader(separator),
            on_progress=on_progress,
            cancel=cancel,
        )
    assert max(chunks_done) == 2  # stopped within the chunk it was asked in
    assert not [item for item in (tmp_path / "out").iterdir() if not item.name.startswith(".")]
