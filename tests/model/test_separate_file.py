"""separate_file end to end: Demucs's own pipeline reproduced, progress, cancellation, stem modes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf

from musicsep.model.errors import Cancelled, InvalidOptions, StorageFull
from musicsep.model.loading import ModelLoader
from musicsep.model.separate import SeparationRequest, separate_file
from small_disk import small_disk  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def loader(tiny_model_repo):
    return ModelLoader(repo=tiny_model_repo, offline=True)


def _read(path):
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.T


def test_float32_stems_equal_demucs_separator(loader, tiny_model_repo, make_clip, tmp_path):
    """Same as `demucs.api.Separator` (whole-track mean/std normalisation + apply_model)."""
    import torch
    from demucs.api import Separator

    clip = make_clip(seconds=7.3)
    result = separate_file(
        clip,
        tmp_path / "out",
        SeparationRequest(model="tiny_htdemucs", format="float32", clip="none", device="cpu"),
        loader=loader,
    )
    demucs = Separator(
        model="tiny_htdemucs", repo=tiny_model_repo, device="cpu", shifts=0, overlap=0.25, progress=False
    )
    mix = torch.from_numpy(_read(clip))
    _, reference = demucs.separate_tensor(mix, 44100)
    assert list(result.stems) == ["drums", "bass", "other", "vocals"]
    for name, path in result.stems.items():
        ours = _read(path)
        assert ours.shape == reference[name].shape
        assert np.abs(ours - reference[name].numpy()).max() < 1e-4
    assert result.frames == mix.shape[1]
    assert result.duration_s == pytest.approx(7.3, abs=1e-3)


def test_progress_is_monotonic_and_ends_at_100(loader, make_clip, tmp_path):
    reports = []
    separate_file(
        make_clip(seconds=6.0),
        tmp_path,
        SeparationRequest(model="tiny_hdemucs"),
        loader=loader,
        on_progress=reports.append,
    )
    percents = [r.percent for r in reports]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    chunks = [r.chunk for r in reports if r.stage == "separate"]
    assert chunks == list(range(1, reports[-1].chunks + 1))
    assert {r.stage for r in reports} == {"decode", "separate", "encode"}
    assert all(r.eta_s is not None for r in reports if r.stage == "separate")


def test_cancel_stops_within_one_chunk_and_leaves_no_files(loader, make_clip, tmp_path):
    cancel = threading.Event()
    seen_after_cancel = []

    def on_progress(report):
        if cancel.is_set() and report.stage == "separate":
            seen_after_cancel.append(report.chunk)
        if report.stage == "separate" and report.chunk == 2:
            cancel.set()

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        separate_file(
            make_clip(seconds=12.0),
            out,
            SeparationRequest(model="tiny_hdemucs"),
            loader=loader,
            on_progress=on_progress,
            cancel=cancel,
        )
    assert seen_after_cancel == []  # the chunk that saw the flag was the last one run
    assert list(out.iterdir()) == []


def test_two_stems_add_like_demucs(loader, make_clip, tmp_path):
    clip = make_clip(seconds=5.0)
    full = separate_file(
        clip, tmp_path / "full", SeparationRequest(model="tiny_htdemucs", format="float32", clip="none"), loader=loader
    )
    two = separate_file(
        clip,
        tmp_path / "two",
        SeparationRequest(model="tiny_htdemucs", format="float32", clip="none", two_stems="vocals"),
        loader=loader,
    )
    assert list(two.stems) == ["vocals", "no_vocals"]
    rest = sum(_read(full.stems[name]) for name in ("drums", "bass", "other"))
    assert np.abs(_read(two.stems["no_vocals"]) - rest).max() < 1e-5
    assert np.abs(_read(two.stems["vocals"]) - _read(full.stems["vocals"])).max() < 1e-6


def test_two_stems_minus_is_the_mix_without_the_stem(loader, make_clip, tmp_path):
    clip = make_clip(seconds=4.0)
    two = separate_file(
        clip,
        tmp_path / "out",
        SeparationRequest(model="tiny_ft", format="float32", clip="none", two_stems="vocals", other_method="minus"),
        loader=loader,
    )
    mix = _read(clip)
    total = _read(two.stems["vocals"]) + _read(two.stems["no_vocals"])
    assert np.abs(total - mix).max() < 1e-5


def test_stem_subset_writes_only_those(loader, make_clip, tmp_path):
    out = tmp_path / "out"
    result = separate_file(
        make_clip(seconds=3.0),
        out,
        SeparationRequest(model="tiny_6s", stems=["piano", "vocals"], format="flac"),
        loader=loader,
    )
    assert sorted(p.name for p in out.iterdir()) == ["piano.flac", "vocals.flac"]
    assert list(result.stems) == ["piano", "vocals"]


@pytest.mark.parametrize(
    "request_kwargs,message",
    [
        ({"stems": ["guitar"]}, "not produced by this model"),
        ({"format": "aac"}, "unknown format"),
        ({"overlap": 1.0}, "overlap"),
        ({"segment": 30.0}, "segment"),
    ],
)
def test_bad_options_are_refused_before_any_work(loader, make_clip, tmp_path, request_kwargs, message):
    with pytest.raises(InvalidOptions, match=message):
        separate_file(
            make_clip(seconds=1.0),
            tmp_path / "o",
            SeparationRequest(model="tiny_htdemucs", **request_kwargs),
            loader=loader,
        )


def test_a_disk_that_fills_while_the_decoded_track_is_spilled_raises_storage_full_and_leaves_nothing(
    loader, make_clip, small_disk
):
    """Before: a bare `OSError: [Errno 28] No space left on device` from the spill's write (a
    traceback in the CLI). The output folder, where the spill goes, is a real 1 MiB tmpfs
    (tests/small_disk.py); 10 s of decoded stereo float32 is 3.5 MB, so the decode fills it
    before any stem is written."""
    disk = small_disk("1m")
    stages = set()
    with pytest.raises(StorageFull) as raised:
        separate_file(
            make_clip(seconds=10.0),
            disk,
            SeparationRequest(model="tiny_hdemucs"),
            loader=loader,
            on_progress=lambda report: stages.add(report.stage),
        )
    assert stages <= {"decode"}  # it was the spill that filled the disk, not a stem
    assert raised.value.code == "storage_full" and str(disk) not in raised.value.message
    assert list(disk.iterdir()) == []
