"""The fallback chain: missing weights fall through to the next model, out-of-memory never
restarts a track, and nothing happens silently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicsep.model.demucs_stream import PassOptions
from musicsep.model.errors import ModelUnavailable
from musicsep.model.loading import ModelLoader
from musicsep.model.recovery import RecoveringSeparator
from musicsep.model.separate import SeparationRequest, separate_file
from musicsep.model.spill import ArrayReader


def test_missing_weights_fall_back_to_the_next_model_and_say_so(tiny_model_repo, make_clip, tmp_path):
    loader = ModelLoader(repo=tiny_model_repo, offline=True, fallback=("htdemucs", "tiny_hdemucs", "dsp"))
    result = separate_file(
        make_clip(seconds=2.0), tmp_path / "o", SeparationRequest(model="htdemucs_ft"), loader=loader
    )
    assert result.model == "tiny_hdemucs" and result.requested_model == "htdemucs_ft"
    assert "htdemucs_ft" in result.fallback_reason and "tiny_hdemucs" in result.fallback_reason
    assert "musicsep models pull htdemucs_ft" in result.fallback_reason


def test_chain_ends_at_dsp_which_needs_no_weights(tmp_path, make_clip):
    loader = ModelLoader(repo=None, offline=True, fallback=("htdemucs", "dsp"))
    result = separate_file(
        make_clip(seconds=2.0), tmp_path / "o", SeparationRequest(model="htdemucs", two_stems="vocals"), loader=loader
    )
    assert result.model == "dsp"
    assert list(result.stems) == ["vocals", "no_vocals"]


def test_without_a_chain_a_missing_model_is_an_error(tmp_path, make_clip):
    loader = ModelLoader(repo=None, offline=True, fallback=())
    with pytest.raises(ModelUnavailable, match="MUSICSEP_MODEL_REPO"):
        separate_file(make_clip(seconds=1.0), tmp_path / "o", SeparationRequest(model="htdemucs"), loader=loader)


def test_requested_model_that_loads_reports_no_fallback(tiny_model_repo, make_clip, tmp_path):
    loader = ModelLoader(repo=tiny_model_repo, offline=True, fallback=("dsp",))
    result = separate_file(
        make_clip(seconds=1.0), tmp_path / "o", SeparationRequest(model="tiny_hdemucs"), loader=loader
    )
    assert result.model == "tiny_hdemucs" and result.fallback_reason is None


class _GpuThatFillsUp(nn.Module):
    """The real tiny HDemucs behind a stand-in for a CUDA device this machine lacks: it raises
    CUDA's own out-of-memory error for more than one segment per pass, and for any pass until the
    model has been moved to the CPU."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        for name in ("samplerate", "sources", "audio_channels", "segment"):
            setattr(self, name, getattr(inner, name))
        self.on_cpu = False
        self.batches: list[int] = []

    def to(self, *args, **kwargs):
        if args and str(args[0]) == "cpu":
            self.on_cpu = True
        return super().to(*args, **kwargs)

    def forward(self, x):
        self.batches.append(len(x))
        if len(x) > 1 or not self.on_cpu:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_halves_the_batch_then_moves_to_cpu_and_output_is_unchanged(tiny_model_repo):
    from demucs.apply import apply_model

    clean = ModelLoader(repo=tiny_model_repo, offline=True).get("tiny_hdemucs", device="cpu")
    flaky = _GpuThatFillsUp(clean.model)
    # "meta" stands for the GPU: inputs are not moved for it, and it is not the CPU.
    separator = RecoveringSeparator("tiny_hdemucs", flaky, torch.device("meta"))
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, 44100 * 9))).astype(np.float32)
    run = separator.prepare(mix.shape[1], separator.sources, PassOptions(batch_size=4))
    ours = np.concatenate(list(run.blocks(ArrayReader(mix), lambda: None)), axis=-1)
    reference = apply_model(clean.model, torch.from_numpy(mix)[None], shifts=0, split=True)[0].numpy()
    assert np.abs(ours - reference).max() < 1e-4
    assert flaky.batches[:3] == [4, 2, 1]  # halved, halved, then the CPU retry of the same chunk
    assert separator.device.type == "cpu"
    assert separator.recoveries == [
        "out of memory with 4 segments per pass; retrying with 2",
        "out of memory with 2 segments per pass; retrying with 1",
        "out of meta memory with one segment; continuing on the CPU",
    ]
