"""Reload after a GPU fallback: a model that ran out of device memory and moved to the CPU in the
middle of a track is loaded on the device again by the next request for that device (the next
job, or `POST /api/v1/models/{name}/load`), instead of its CPU copy serving every later job.

This machine has no CUDA, so the device is a stand-in, and only the device: `resolve_device`
maps "cuda" to torch's "meta" device (not the CPU, so the engine treats it as an accelerator and
the recovery moves the model off it), and each model the loader reads (the real tiny HDemucs,
from its real weight files) keeps its weights where they can compute when moved to "meta", and
raises CUDA's own OutOfMemoryError from its forward pass while the stand-in device is full.
The loader, its cache, the out-of-memory recovery, the engine and the route are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from musicsep.model import loading
from musicsep.model.loading import ModelLoader
from musicsep.model.separate import SeparationRequest, separate_file
from musicsep.service import model_loads

GPU = torch.device("meta")  # the stand-in for cuda


@dataclass
class FakeGpu:
    full: bool = True
    loads: int = 0
    #: Where each forward pass ran: "cuda" (the stand-in) or "cpu".
    forwards: list[str] = field(default_factory=list)


class _OnFakeGpu(nn.Module):
    def __init__(self, inner: nn.Module, gpu: FakeGpu) -> None:
        super().__init__()
        self.inner = inner
        for name in ("samplerate", "sources", "audio_channels", "segment"):
            setattr(self, name, getattr(inner, name))
        self.gpu = gpu
        self.on_cpu = False

    def to(self, *args, **kwargs):
        if args and args[0] == GPU:
            return self  # "on the GPU": the weights stay where they can compute
        if args and str(args[0]) == "cpu":
            self.on_cpu = True
        return super().to(*args, **kwargs)

    def forward(self, x):
        if not self.on_cpu and self.gpu.full:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.gpu.forwards.append("cpu" if self.on_cpu else "cuda")
        return self.inner(x)


@pytest.fixture
def gpu(monkeypatch) -> FakeGpu:
    """'cuda' resolves to the stand-in device, and every model the loader reads runs on it."""
    state = FakeGpu()
    real_resolve, real_load = loading.resolve_device, ModelLoader._load

    def resolve(device: str = "auto"):
        return GPU if device == "cuda" else real_resolve(device)

    def load(self, name, stems=None):
        state.loads += 1
        return _OnFakeGpu(real_load(self, name, stems), state)

    monkeypatch.setattr(loading, "resolve_device", resolve)
    monkeypatch.setattr(model_loads, "resolve_device", resolve)
    monkeypatch.setattr(ModelLoader, "_load", load)
    return state


def _separate(loader, clip, out):
    return separate_file(clip, out, SeparationRequest(model="tiny_hdemucs", device="cuda"), loader=loader)


def test_the_next_job_after_a_fallback_to_the_cpu_runs_on_the_device_again(gpu, tiny_model_repo, make_clip, tmp_path):
    loader = ModelLoader(repo=tiny_model_repo, offline=True)
    clip = make_clip(seconds=3.0)
    first = _separate(loader, clip, tmp_path / "first")
    assert first.device == "cpu" and "continuing on the CPU" in first.fallback_reason
    assert gpu.loads == 1

    gpu.full, gpu.forwards = False, []  # the memory that filled the device is free again
    second = _separate(loader, clip, tmp_path / "second")
    assert gpu.loads == 2, "the CPU copy of the model served the job again"
    assert second.device == str(GPU) and second.fallback_reason is None
    assert set(gpu.forwards) == {"cuda"}
    for name, path in second.stems.items():
        assert np.array_equal(sf.read(path)[0], sf.read(first.stems[name])[0])  # same weights, same stems


def test_loading_on_the_device_after_a_fallback_loads_again(gpu, live_server, make_clip, tmp_path):
    server = live_server()
    load = f"{server.url}/api/v1/models/tiny_hdemucs/load"
    assert httpx.post(load, json={"device": "cuda"}, timeout=60).json()["device"] == str(GPU)
    _separate(server.service.loader, make_clip(seconds=3.0), tmp_path / "o")  # falls back mid-track
    assert gpu.loads == 1

    gpu.full = False
    again = httpx.post(load, json={"device": "cuda"}, timeout=60)
    assert again.status_code == 200
    assert again.json()["device"] == str(GPU), "the load answered with the CPU copy"
    assert gpu.loads == 2
