"""The model list a person picks from: which models are installed here (found without loading
them), how fast each has run on this server, and the published quality in one line."""

from __future__ import annotations

import httpx
import pytest

from model_name_fixtures import model_places, weight_reads  # noqa: F401  (fixtures)
from server_harness import stream_events


def _models(server) -> dict[str, dict]:
    answer = httpx.get(f"{server.url}/api/v1/models", timeout=30)
    assert answer.status_code == 200, answer.text
    return {entry["name"]: entry for entry in answer.json()["models"]}


def test_models_say_if_installed_how_fast_they_ran_here_and_their_quality(live_server, make_clip, weight_reads):
    server = live_server()
    before = _models(server)
    assert weight_reads.count == 0, "finding weights reads none"
    assert before["dsp"]["installed"] is True and before["dsp"]["speed"] is None
    file_models = [entry for entry in before.values() if entry["arch"] in ("mdx", "mdx23c", "bs_roformer")]
    assert file_models and not any(entry["installed"] for entry in file_models), "the model folder holds none"
    rated = [entry for entry in before.values() if entry["quality"]]
    assert rated and all(entry["quality_note"].startswith("SDR ") for entry in rated)
    assert all(entry["quality_note"] is None for entry in before.values() if not entry["quality"])

    separating = 0.0
    for _ in range(2):
        with make_clip(seconds=2.0).open("rb") as handle:
            accepted = httpx.post(
                f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}, data={"model": "dsp"}, timeout=30
            ).json()
        assert stream_events(server.url + accepted["events_url"])[1][-1][1] == "completed"
        separating += httpx.get(server.url + accepted["status_url"], timeout=10).json()["timings"]["separate_s"]
    speed = _models(server)["dsp"]["speed"]
    assert speed["jobs"] == 2
    # Audio seconds per second of separation (4 s of audio in all), not the inverse.
    assert speed["realtime_factor"] == pytest.approx(4.0 / separating, rel=0.02)
