"""Model names in the model layer: names, never paths, looked up in the catalog and the
model folder only; one spelling, one cache entry; checks that read no weights; a cache bounded by
memory; an absent device is a clear error."""

from __future__ import annotations

import gc
import shutil
from argparse import Namespace

import pytest

from model_name_fixtures import model_places, weight_reads  # noqa: F401  (fixtures)
from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.model.loading import ModelLoader, resolve_device
from musicsep.service.jobs import JobSpec
from musicsep.service.validation import check_model

OUTSIDE_NAMES = ["../outside/evil", "../outside/evil_bag", "../../outside/evil", "..\\outside\\evil"]


def _spellings(repo) -> list[str]:
    """Twelve ways to write `tiny_one` that today's code would each load (and cache) again."""
    r, n = str(repo), repo.name
    return [
        "./tiny_one",
        "././tiny_one",
        ".//tiny_one",
        "./././tiny_one",
        f"{r}/tiny_one",
        f"{r}//tiny_one",
        f"{r}/./tiny_one",
        f"../{n}/tiny_one",
        f"./../{n}/tiny_one",
        f"../{n}/./tiny_one",
        f"/{r}/tiny_one",
        f"{r}/../{n}/tiny_one",
    ]


@pytest.mark.parametrize("name", ["htdemucs", "htdemucs_ft", "mdx_extra_q", "tiny_one", "a", "x.y-z_1", "A" * 64])
def test_model_name_accepts_plain_names(name):
    from musicsep.model.names import model_name

    assert model_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        ".htdemucs",
        "../x",
        "a/b",
        "a\\b",
        "/etc/passwd",
        "./htdemucs",
        "htdemucs\x00",
        "htdemucs\n",
        " htdemucs",
        "htdemucs ",
        "%2e%2e",
        "A" * 65,
        "ｈｔdemucs",
        "htdemucs²",
        "~root",
        "htdemucs;rm",
        "c:evil",
    ],
)
def test_model_name_refuses_paths_and_odd_characters(name):
    from musicsep.model.names import InvalidModelName, model_name

    with pytest.raises(InvalidModelName) as info:
        model_name(name)
    assert isinstance(info.value, ModelUnavailable)  # the error table's 422 model_unavailable
    assert "letters, digits" in info.value.message


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_a_dotdot_name_reaching_a_real_model_outside_the_folder_is_refused_and_not_loaded(
    model_places, weight_reads, name
):
    """Was: `../outside/evil` loaded `outside/evil.safetensors` (and `evil_bag.yaml` its member)."""
    weight_reads.watched.append(model_places.outside)
    loader = ModelLoader(repo=model_places.repo, offline=True, fallback=("tiny_one", "dsp"))
    assert not loader.is_available(name)
    with pytest.raises(ModelUnavailable, match="letters, digits"):
        loader.get(name, device="cpu")
    with pytest.raises(ModelUnavailable, match="letters, digits"):  # no fallback for a bad name either
        loader.resolve(name, device="cpu")
    with pytest.raises(ModelUnavailable):
        check_model(JobSpec(model=name), loader)
    assert loader.loaded() == []
    assert weight_reads.count == 0 and weight_reads.opened == []


def test_an_absolute_path_to_a_real_model_is_refused_and_not_loaded(model_places, weight_reads):
    weight_reads.watched.append(model_places.outside)
    loader = ModelLoader(repo=model_places.repo, offline=True)
    for name in (str(model_places.outside / "evil"), str(model_places.outside / "evil_bag")):
        with pytest.raises(ModelUnavailable):
            loader.get(name, device="cpu")
    assert loader.loaded() == [] and weight_reads.count == 0 and weight_reads.opened == []


def test_twelve_spellings_of_one_model_leave_one_cache_entry(model_places, weight_reads):
    """Was: each spelling loaded and cached its own copy (12 copies of real weights: a memory DoS)."""
    loader = ModelLoader(repo=model_places.repo, offline=True)
    canonical = loader.get("tiny_one", device="cpu")
    refused = []
    for name in _spellings(model_places.repo):
        try:
            assert loader.get(name, device="cpu") is canonical
        except ModelUnavailable:
            refused.append(name)
    assert loader.loaded() == ["tiny_one"]
    assert refused == _spellings(model_places.repo)  # only the canonical name is a name
    assert len(weight_reads.paths) == 1


def test_a_symlink_in_the_folder_pointing_outside_it_is_not_followed(model_places, tmp_path, weight_reads):
    repo = tmp_path / "repo"
    shutil.copytree(model_places.repo, repo)
    (repo / "linked.safetensors").symlink_to(model_places.outside / "evil.safetensors")
    loader = ModelLoader(repo=repo, offline=True)
    assert not loader.is_available("linked")
    with pytest.raises(ModelUnavailable):
        loader.get("linked", device="cpu")
    assert weight_reads.count == 0


def test_a_bag_listing_a_member_by_path_is_refused(model_places, tmp_path, weight_reads):
    repo = tmp_path / "repo"
    shutil.copytree(model_places.repo, repo)
    (repo / "sneaky.yaml").write_text("models: ['../outside/evil']\n")
    shutil.copytree(model_places.outside, tmp_path / "outside")
    with pytest.raises(ModelUnavailable):
        ModelLoader(repo=repo, offline=True).get("sneaky", device="cpu")
    assert weight_reads.count == 0


def test_validity_checks_read_no_weights(model_places, weight_reads):
    """Was: checking a folder model that was not loaded yet loaded it in full (then dropped it), and
    so did every name that reached a weight file; an unknown name is answered from the catalog and
    a listing of the folder."""
    loader = ModelLoader(repo=model_places.repo, offline=True)
    for name in ("tiny_one", "no_such_model", "htdemucs", "./tiny_one", "tiny_one.safetensors", "TINY_ONE"):
        try:
            check_model(JobSpec(model=name), loader)
        except (ModelUnavailable, InvalidOptions):
            pass
    assert loader.is_available("tiny_one") and not loader.is_available("no_such_model")
    assert not loader.is_available("TINY_ONE")  # names are matched exactly, also on a case-blind disk
    with pytest.raises(ModelUnavailable, match="unknown model 'no_such_model'"):
        check_model(JobSpec(model="no_such_model"), loader)
    with pytest.raises(ModelUnavailable, match="unknown model"):
        loader.get("no_such_model")
    assert weight_reads.count == 0 and loader.loaded() == []


def test_models_list_reads_no_weights(tiny_model_repo, tmp_path, monkeypatch, weight_reads, capsys):
    """Was: `musicsep models list` loaded every catalog model found on this machine to say 'local: yes'."""
    import json

    from musicsep.cli.models import list_models

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(tiny_model_repo / "bbbb0004.safetensors", repo)
    shutil.copy(tiny_model_repo / "tiny_st.yaml", repo / "htdemucs.yaml")  # a catalog name, in the folder
    monkeypatch.setenv("MUSICSEP_MODEL_REPO", str(repo))
    monkeypatch.setenv("MUSICSEP_OFFLINE", "1")
    assert list_models(Namespace(json=True)) == 0
    rows = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["htdemucs"]["available"] and not rows["htdemucs_ft"]["available"] and rows["dsp"]["available"]
    assert weight_reads.count == 0


def test_a_bag_whose_member_is_missing_is_not_available(tiny_model_repo, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(tiny_model_repo / "tiny_ft.yaml", repo)
    shutil.copy(tiny_model_repo / "cccc0000.safetensors", repo)
    loader = ModelLoader(repo=repo, offline=True)
    assert not loader.is_available("tiny_ft")
    assert loader.knows("tiny_ft")  # still a name of this folder: loading it says what is missing


def test_the_cache_evicts_least_recently_used_models_over_its_budget(tiny_model_repo, weight_reads):
    """Was: the cache grew without bound (one entry per name, device, precision and stems)."""
    from musicsep.model.cache import model_bytes

    probe = ModelLoader(repo=tiny_model_repo, offline=True)
    one = model_bytes(probe.get("tiny_htdemucs", device="cpu").model)
    del probe
    loader = ModelLoader(repo=tiny_model_repo, offline=True, cache_mb=2.5 * one / 2**20)
    loader.get("tiny_htdemucs", device="cpu")
    loader.get("tiny_st", device="cpu")
    loader.get("tiny_htdemucs", device="cpu")  # now the most recently used
    assert loader.loaded() == ["tiny_htdemucs", "tiny_st"]
    reads_before = weight_reads.count
    loader.get("tiny_6s", device="cpu")  # over budget: the least recently used (tiny_st) goes
    assert loader.loaded() == ["tiny_6s", "tiny_htdemucs"]
    assert loader.cache_bytes() <= 2.5 * one + 1
    loader.get("tiny_htdemucs", device="cpu")
    assert weight_reads.count == reads_before + 1  # tiny_6s only: tiny_htdemucs stayed cached


def test_a_model_in_use_is_not_dropped_nor_loaded_twice(tiny_model_repo, weight_reads):
    """A running job holds its separator: over budget, idle models go first, and a model still held
    by a job is handed out again instead of being loaded a second time beside it."""
    from musicsep.model.cache import model_bytes

    probe = ModelLoader(repo=tiny_model_repo, offline=True)
    one = model_bytes(probe.get("tiny_htdemucs", device="cpu").model)
    del probe
    loader = ModelLoader(repo=tiny_model_repo, offline=True, cache_mb=2.5 * one / 2**20)
    in_use = loader.get("tiny_htdemucs", device="cpu")  # a job holds it
    loader.get("tiny_st", device="cpu")
    reads = weight_reads.count
    loader.get("tiny_6s", device="cpu")
    gc.collect()
    assert "tiny_st" not in loader.loaded()  # the idle one was dropped, the held one stays
    assert loader.get("tiny_htdemucs", device="cpu") is in_use
    assert weight_reads.count == reads + 1
    del in_use


def test_the_cache_budget_comes_from_the_settings(model_repo_env, monkeypatch):
    from musicsep.config import get_settings

    monkeypatch.setenv("MUSICSEP_MODEL_CACHE_MB", "123")
    loader = ModelLoader.from_settings(get_settings())
    assert loader.cache_budget_bytes == 123 * 2**20
    assert get_settings(model_cache_mb=4096).model_cache_mb == 4096


def test_an_absent_device_is_a_clear_error():
    """Was: `device=mps` on a machine without it went on to `model.to('mps')` and a 500."""
    import torch

    from musicsep.model.errors import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="this machine has: cpu") as info:
        resolve_device("mps")
    assert info.value.code == "device_unavailable"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="cuda"):
            resolve_device("cuda")
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda:99")
    with pytest.raises(DeviceUnavailable):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize(
    "setting", [{"default_model": "../evil/x"}, {"preload": ["tiny_one", "/abs/x"]}, {"fallback": "htdemucs,./dsp"}]
)
def test_settings_refuse_model_names_that_are_paths(setting):
    from pydantic import ValidationError

    from musicsep.config import get_settings

    with pytest.raises(ValidationError, match="letters, digits"):
        get_settings(**setting)


@pytest.mark.parametrize("text", ["models: [", "just a string", "models: 3", "{}"])
def test_a_damaged_bag_file_is_a_clear_error(model_places, tmp_path, text):
    repo = tmp_path / "repo"
    shutil.copytree(model_places.repo, repo)
    (repo / "broken.yaml").write_text(text)
    loader = ModelLoader(repo=repo, offline=True)
    assert loader.knows("broken") and not loader.is_available("broken")
    with pytest.raises(ModelUnavailable):
        loader.get("broken", device="cpu")
