"""The page's "Choose stems": one checkbox per stem of the selected model, at least one, sent as
the `stems` form field; the job then has those stems only."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

from conftest import write_bag  # tests/conftest.py: the tiny models' files
from server_harness import base_settings, start_server

pytestmark = pytest.mark.browser


def _repo_with_tiny_htdemucs(tiny_model_repo, folder):
    """The tiny models' folder where `htdemucs` is a tiny model too: the catalog then gives the
    page its stems (drums, bass, other, vocals), as for the real one."""
    shutil.copytree(tiny_model_repo, folder)
    write_bag(folder, "htdemucs", ["aaaa0002"])
    return folder


@pytest.fixture
def server(tiny_model_repo, tmp_path):
    repo = _repo_with_tiny_htdemucs(tiny_model_repo, tmp_path / "models")
    started = start_server(base_settings(tmp_path / "data", repo, default_model="htdemucs"))
    yield started
    started.stop()


def test_chosen_stems_are_the_only_ones_separated_and_none_is_refused(page, server, make_clip, artifacts):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 360, "height": 740})
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(server.url)
    expect(page.locator("#model")).to_have_value("htdemucs")
    page.set_input_files("#file", str(make_clip(seconds=3.0)))
    page.get_by_label("Choose stems").check()
    boxes = page.get_by_role("checkbox", name=re.compile(r"^Stem "))
    expect(boxes).to_have_count(4)

    page.click("#submit")
    expect(page.locator("#stem-choice-error")).to_have_text("Choose at least one stem.")
    assert posts == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing scrolls sideways
    page.locator("#new-job").screenshot(path=str(artifacts / "stems-choice-phone.png"))

    page.get_by_label("Stem vocals").check()
    page.get_by_label("Stem drums").check()
    expect(page.locator("#stem-choice-error")).to_be_hidden()
    # A model with other stems: the shared one keeps its tick, the others drop out.
    page.select_option("#model", "UVR-MDX-NET-Inst_HQ_4")
    assert boxes.evaluate_all("boxes => boxes.map(b => [b.value, b.checked])") == [
        ["instrumental", False],
        ["vocals", True],
    ]
    page.select_option("#model", "htdemucs")
    expect(page.get_by_label("Stem drums")).not_to_be_checked()
    page.get_by_label("Stem drums").check()

    page.click("#submit")
    rows = page.locator("#stems li.stem")
    expect(page.locator("#stems")).to_have_attribute("data-playable", "true")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.stem)") == ["drums", "vocals"]
    job_id = re.fullmatch(r".*#job=([\w-]+)", page.url).group(1)
    job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=30).json()
    assert job["options"]["stems"] == ["drums", "vocals"]
    assert sorted(job["stems"]) == ["drums", "vocals"]
    expect(page.locator(f'#library-list li[data-job-id="{job_id}"]')).to_contain_text("drums, vocals")
    assert page.console_errors == []
