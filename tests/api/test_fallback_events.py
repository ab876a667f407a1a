"""What the server says when the requested model cannot run: a fallback named in the events, or
a `failed` event with code `model_unavailable` when the chain is off."""

from __future__ import annotations

import httpx

from server_harness import stream_events


def _submit(url: str, clip, **fields: str) -> dict:
    with clip.open("rb") as handle:
        response = httpx.post(f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_missing_weights_run_dsp_and_the_events_say_so(live_server, make_clip):
    server = live_server(fallback="htdemucs,dsp")
    job = _submit(server.url, make_clip(seconds=2.0), model="htdemucs", analyze="false")
    _, events = stream_events(server.url + job["events_url"])
    started = next(data for _, kind, data in events if kind == "started")
    completed = events[-1][2]
    assert events[-1][1] == "completed"
    assert started["model"] == completed["model"] == "dsp"
    assert started["requested_model"] == "htdemucs"
    assert "musicsep models pull htdemucs" in started["fallback_reason"]
    assert "used 'dsp' instead" in completed["fallback_reason"]


def test_without_fallback_a_missing_model_fails_with_model_unavailable(live_server, make_clip):
    server = live_server(fallback="none")
    job = _submit(server.url, make_clip(seconds=1.0), model="htdemucs")
    _, events = stream_events(server.url + job["events_url"])
    assert events[-1][1] == "failed"
    assert events[-1][2]["code"] == "model_unavailable"
    assert "MUSICSEP_MODEL_REPO" in events[-1][2]["message"]
