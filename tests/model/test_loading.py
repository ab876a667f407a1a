"""Weights load through Demucs 4.1's own code from a local folder and from the Hugging Face cache."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from musicsep.config import get_settings
from musicsep.model.errors import ModelUnavailable
from musicsep.model.loading import ModelLoader


@pytest.mark.parametrize(
    "name,members,fmt",
    [
        ("tiny_htdemucs", 1, ".th single model"),
        ("tiny_hdemucs", 1, ".th single model"),
        ("tiny_bag", 2, ".th bag"),
        ("tiny_st", 1, ".safetensors bag"),
        ("tiny_ft", 4, ".safetensors bag"),
    ],
)
def test_models_load_by_name_from_the_settings_folder(model_repo_env, name, members, fmt):
    settings = get_settings()
    loader = ModelLoader(repo=settings.model_repo, offline=settings.offline)
    separator = loader.get(name, device="auto")
    assert separator.sources == ["drums", "bass", "other", "vocals"]
    assert len(separator.members()[0]) == members, fmt
    assert str(separator.device) == "cpu"
    assert loader.get(name, device="cpu") is separator  # cached
    assert loader.loaded() == [name]


def test_missing_offline_model_names_both_fixes(tiny_model_repo):
    loader = ModelLoader(repo=tiny_model_repo, offline=True)
    with pytest.raises(ModelUnavailable) as info:
        loader.get("htdemucs_ft")
    message = info.value.message
    assert "musicsep models pull htdemucs_ft" in message and "MUSICSEP_MODEL_REPO" in message
    assert not loader.is_available("htdemucs_ft")
    assert loader.is_available("tiny_bag")


def test_unknown_model_lists_the_catalog(tiny_model_repo):
    with pytest.raises(ModelUnavailable, match="known models: htdemucs"):
        ModelLoader(repo=tiny_model_repo, offline=False).get("no_such_model")


def test_damaged_weights_are_a_clear_error(tiny_model_repo, tmp_path):
    folder = tmp_path / "repo"
    shutil.copytree(tiny_model_repo, folder)
    damaged = next(folder.glob("tiny_htdemucs-*.th"))
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with pytest.raises(ModelUnavailable, match="damaged"):
        ModelLoader(repo=folder, offline=True).get("tiny_htdemucs")


def test_bag_member_missing_from_folder(tiny_model_repo, tmp_path):
    folder = tmp_path / "repo"
    shutil.copytree(tiny_model_repo, folder)
    next(folder.glob("cccc0002.safetensors")).unlink()
    with pytest.raises(ModelUnavailable, match="cccc0002"):
        ModelLoader(repo=folder, offline=True).get("tiny_ft")


def test_hugging_face_cache_is_used_without_network(tiny_model_repo, tmp_path):
    """A hub-style cache (models--adefossez--<repo>/snapshots/<rev>/...) as `models pull` leaves it,
    for a catalog name (the hub holds catalog models only; other names are the folder's)."""
    snapshot = tmp_path / "hub" / "models--adefossez--HTDemucs"
    revision = "0" * 40
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text(revision)
    files = snapshot / "snapshots" / revision
    files.mkdir(parents=True)
    shutil.copy(tiny_model_repo / "tiny_st.yaml", files / "htdemucs.yaml")
    shutil.copy(tiny_model_repo / "bbbb0004.safetensors", files)
    # huggingface_hub reads its cache location at import: a fresh interpreter sees the new one.
    code = (
        "from musicsep.model.loading import ModelLoader;"
        "loader = ModelLoader(offline=True);"
        "assert loader.is_available('htdemucs') and not loader.is_available('htdemucs_ft');"
        "s = loader.get('htdemucs', device='cpu');"
        "print(len(s.members()[0]), s.sources)"
    )
    env = {
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "TORCH_HOME": str(tmp_path / "torch"),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 ['drums', 'bass', 'other', 'vocals']"


def test_a_per_stem_bag_reads_only_the_members_the_requested_stems_need(tiny_model_repo, tmp_path):
    """htdemucs_ft with one stem: the other members' files are never opened (here they are
    damaged, so reading them would fail) and the stem equals the whole bag's."""
    import numpy as np
    import torch
    from demucs.apply import apply_model

    from musicsep.model.demucs_stream import PassOptions
    from musicsep.model.spill import ArrayReader

    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(4):
        shutil.copy(tiny_model_repo / f"cccc000{i}.safetensors", folder)
    shutil.copy(tiny_model_repo / "tiny_ft.yaml", folder / "htdemucs_ft.yaml")
    whole = ModelLoader(repo=folder, offline=True).get("htdemucs_ft", device="cpu")
    for i in range(3):  # drums, bass, other: damaged on disk
        (folder / f"cccc000{i}.safetensors").write_bytes(b"not weights")

    loader = ModelLoader(repo=folder, offline=True)
    vocals_only = loader.get("htdemucs_ft", device="cpu", stems=["vocals"])
    assert len(vocals_only.members()[0]) == 1
    with pytest.raises(ModelUnavailable, match="damaged"):
        loader.get("htdemucs_ft", device="cpu")

    mix = np.random.default_rng(3).standard_normal((2, 44100 * 6)).astype(np.float32) * 0.1
    run = vocals_only.prepare(mix.shape[1], ["vocals"], PassOptions(overlap=0.25))
    ours = np.concatenate(list(run.blocks(ArrayReader(mix), lambda: None)), axis=-1)
    reference = apply_model(whole.model, torch.from_numpy(mix)[None], shifts=0, split=True, overlap=0.25)[0]
    assert np.abs(ours[0] - reference[3].numpy()).max() < 1e-4
