"""The `dsp` separator driven by the real streaming engine (`separate_file`): files written, progress
per chunk, and two-stem mode whose stems add back up to the decoded input.

The loader here is a stand-in that hands out a `DspSeparator` for the name "dsp" (the catalog and
ModelLoader wiring belong to the fallback-chain work); everything after it is the real engine.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musicsep.model.dsp import DspSeparator
from musicsep.model.loading import ModelLoader
from musicsep.model.separate import SeparationRequest, separate_file


@pytest.mark.parametrize("other_method", ["add", "minus"])
def test_two_stem_files_add_up_to_the_input(make_clip, tmp_path, other_method):
    clip = make_clip(seconds=26.0)  # longer than two of dsp's 11.9 s blocks
    reports = []
    result = separate_file(
        clip,
        tmp_path / "out",
        SeparationRequest(model="dsp", two_stems="vocals", other_method=other_method, format="float32", clip="none"),
        loader=ModelLoader(offline=True),
        on_progress=reports.append,
    )
    assert result.model == "dsp"
    assert sorted(result.stems) == ["no_vocals", "vocals"]
    mix, _ = sf.read(str(clip), dtype="float32", always_2d=True)
    vocals, _ = sf.read(str(result.stems["vocals"]), dtype="float32", always_2d=True)
    rest, _ = sf.read(str(result.stems["no_vocals"]), dtype="float32", always_2d=True)
    assert vocals.shape == rest.shape == mix.shape
    assert np.max(np.abs(vocals + rest - mix)) < 1e-4
    assert 0 < np.sqrt(np.mean(vocals**2)) < np.sqrt(np.mean(mix**2))
    chunks = DspSeparator().chunks(mix.shape[0], ["vocals"])
    separated = [r.chunk for r in reports if r.stage == "separate"]
    assert max(separated) == chunks > 1
    assert reports[-1].percent == 100
