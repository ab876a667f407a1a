"""Forward passes in flight side by side (`jobs`) must not change the arithmetic: still apply_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicsep.model.demucs_stream import PassOptions
from musicsep.model.loading import ModelLoader
from musicsep.model.spill import ArrayReader

SR = 44100


@pytest.fixture(scope="module")
def loader(tiny_model_repo):
    return ModelLoader(repo=tiny_model_repo, offline=True)


def _mix(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 196 * t)
    return (np.stack([tone, 0.6 * tone]) + 0.05 * rng.standard_normal((2, t.size))).astype(np.float32)


@pytest.mark.parametrize("name,jobs,batch", [("tiny_htdemucs", 2, 1), ("tiny_hdemucs", 3, 2), ("tiny_bag", 2, 1)])
def test_jobs_give_apply_model_output(loader, name, jobs, batch):
    from demucs.apply import apply_model

    separator = loader.get(name, device="cpu")
    mix = _mix(11.3)  # not a multiple of the stride: the last, short chunk runs alone
    run = separator.prepare(mix.shape[1], separator.sources, PassOptions(overlap=0.25, batch_size=batch, jobs=jobs))
    calls = []
    ours = np.concatenate(list(run.blocks(ArrayReader(mix), lambda: calls.append(1))), axis=-1)
    reference = apply_model(separator.model, torch.from_numpy(mix)[None], shifts=0, split=True, overlap=0.25)[0].numpy()
    assert len(calls) == run.chunks
    assert np.abs(ours - reference).max() < 1e-4


def test_workers_leave_the_callers_thread_count_alone(loader):
    separator = loader.get("tiny_hdemucs", device="cpu")
    before = torch.get_num_threads()
    run = separator.prepare(int(5 * SR), separator.sources, PassOptions(jobs=2))
    list(run.blocks(ArrayReader(_mix(5.0)), lambda: None))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("callers_setting", [True, False])
def test_the_attention_kernel_switch_is_given_back_to_the_caller(loader, callers_setting):
    """Separation runs attention through SDPA (PyTorch's process-wide fast-path switch off);
    a program that embeds musicsep gets its own setting back when the separation ends."""
    separator = loader.get("tiny_htdemucs", device="cpu")
    torch.backends.mha.set_fastpath_enabled(callers_setting)
    try:
        run = separator.prepare(int(5 * SR), separator.sources, PassOptions())
        list(run.blocks(ArrayReader(_mix(5.0)), lambda: None))
        assert torch.backends.mha.get_fastpath_enabled() is callers_setting
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
