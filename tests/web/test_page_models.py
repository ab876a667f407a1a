"""The page's model picker: every family with its architecture, stems and published quality, and
the ensemble presets in their own group; the model list route gives the page those fields."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.browser


def test_model_list_route_gives_arch_stems_quality_and_ensemble_members(live_server):
    server = live_server()
    body = httpx.get(f"{server.url}/api/v1/models", timeout=30).json()
    models = {model["name"]: model for model in body["models"]}
    assert {"name", "stems", "description", "loaded"} <= set(models["htdemucs"])  # the fields before stay
    inst = models["UVR-MDX-NET-Inst_HQ_4"]
    assert inst["arch"] == "mdx" and inst["stems"] == ["instrumental", "vocals"]
    assert inst["quality"] == {"sdr": {"instrumental": 15.86}, "basis": "MVSEP Multisong", "source": "UVR release note"}
    assert models["ensemble_best_vocals"]["members"] == ["bs_roformer_viperx_1297", "mel_band_roformer_kim"]
    assert models["htdemucs_ft"]["quality"] is None and models["htdemucs_ft"]["members"] is None


def test_picker_shows_families_quality_and_ensemble_presets(page, live_server):
    from playwright.sync_api import expect

    server = live_server()
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    # The test server has the tiny models' weights only: the catalog's models say they are not here.
    expect(page.locator('#model option[value="UVR-MDX-NET-Inst_HQ_4"]')).to_have_text(
        "UVR-MDX-NET-Inst_HQ_4 · MDX-Net (not installed)"
    )
    ensembles = page.locator('#model optgroup[label^="Ensembles"] option')
    assert ensembles.evaluate_all("options => options.map(o => o.value)") == [
        "ensemble_best_vocals",
        "ensemble_best_instrumental",
        "ensemble_low_resource",
    ]
    page.select_option("#model", "UVR-MDX-NET-Inst_HQ_4")
    expect(page.locator("#model-stems")).to_contain_text("Stems: instrumental, vocals.")
    expect(page.locator("#model-stems")).to_contain_text(
        "Published SDR: instrumental 15.86 dB (MVSEP Multisong; UVR release note)"
    )
    expect(page.locator("#model-stems")).to_contain_text("Not installed here")
    page.select_option("#model", "ensemble_best_vocals")
    expect(page.locator("#model-stems")).to_contain_text("Combines: bs_roformer_viperx_1297, mel_band_roformer_kim.")
    expect(page.locator('input[name="mode"][value="karaoke"]')).to_be_enabled()
    assert page.console_errors == []
