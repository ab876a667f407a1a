"""What the page plays and exports: each stem's small preview and its peaks, and a mix of the
stems with a gain each, from a real job of the tiny model on a real server."""

from __future__ import annotations

import io
import json
import math
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import synth_music
from server_harness import base_settings, start_server, stream_events


def _completed_job(server, clip, name: str = "My Song.wav", **fields: str) -> dict:
    with clip.open("rb") as handle:
        accepted = httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": (name, handle)}, data={"analyze": "false", **fields}, timeout=60
        ).json()
    _, events = stream_events(server.url + accepted["events_url"])
    assert events[-1][1] == "completed", events[-1]
    view = httpx.get(server.url + accepted["status_url"], timeout=10).json()
    if fields.get("payload") != "base64":
        assert view["stems"] == events[-1][2]["stems"], "the completed event and the job view link the same files"
    return view


@pytest.fixture(scope="module")
def song(tmp_path_factory, tiny_model_repo):
    """One server and one finished 2-second job for the tests that only read it."""
    folder = tmp_path_factory.mktemp("song")
    clip = folder / "My Song.wav"
    sf.write(str(clip), synth_music(2.0).T, 44100)
    server = start_server(base_settings(folder / "data", tiny_model_repo))
    try:
        yield server, _completed_job(server, clip)
    finally:
        server.stop()


def _stem(server, link: str) -> np.ndarray:
    reply = httpx.get(server.url + link, timeout=30)
    assert reply.status_code == 200, reply.text
    data, _ = sf.read(io.BytesIO(reply.content), dtype="float32", always_2d=True)
    return data


def test_every_stem_has_an_opus_preview_of_its_length_and_peaks_on_one_scale(song):
    server, view = song
    assert set(view["stems"]) == {"drums", "bass", "other", "vocals"}
    levels = {}
    for name, entry in view["stems"].items():
        stem = _stem(server, entry["url"])
        preview = httpx.get(server.url + entry["preview_url"], timeout=30)
        assert preview.status_code == 200 and preview.headers["content-type"] == "audio/ogg"
        assert preview.content[:4] == b"OggS" and b"OpusHead" in preview.content[:200]
        assert len(preview.content) < entry["bytes"] / 4, "a preview is a fraction of the WAV"
        peaks = httpx.get(server.url + entry["peaks_url"], timeout=30).json()
        assert peaks["rate"] == 50 and peaks["samplerate"] == 44100
        assert peaks["duration_s"] == pytest.approx(len(stem) / 44100, abs=1e-4)
        assert len(peaks["peaks"]) == math.ceil(len(stem) * 50 / 44100)
        window = 44100 // 50
        expected = [float(np.abs(stem[i : i + window]).max()) for i in range(0, len(stem), window)]
        assert np.allclose(peaks["peaks"], expected, atol=1e-4 + 1 / 32768), "absolute, not normalised per stem"
        levels[name] = max(peaks["peaks"])
    assert len({round(level, 3) for level in levels.values()}) > 1, "the stems keep their own levels"
    assert view["timings"]["previews_s"] >= 0


def test_preview_links_are_signed_like_the_stem_links(song):
    server, view = song
    entry = view["stems"]["vocals"]
    unsigned = entry["preview_url"].split("?")[0]
    assert httpx.get(server.url + unsigned, timeout=10).status_code == 403
    forged = entry["peaks_url"].replace("/vocals/peaks", "/drums/peaks")
    assert httpx.get(server.url + forged, timeout=10).status_code == 403


def test_a_base64_job_has_no_previews(live_server, make_clip):
    server = live_server()
    view = _completed_job(server, make_clip(seconds=1.0), payload="base64")
    assert all(entry["preview_url"] is None and entry["peaks_url"] is None for entry in view["stems"].values())


def _mix(server, view, body: dict, url: str | None = None) -> httpx.Response:
    return httpx.post(server.url + (url or view["mix_url"]), json=body, timeout=60)


def test_a_mix_of_all_but_drums_is_the_sum_of_the_other_stems(song):
    server, view = song
    reply = _mix(server, view, {"gains": {"drums": 0.0}, "format": "wav16"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "audio/wav"
    assert int(reply.headers["content-length"]) == len(reply.content)
    assert reply.headers["content-disposition"] == (
        "attachment; filename=\"My Song - mix.wav\"; filename*=UTF-8''" + quote("My Song - mix.wav")
    )
    mix, rate = sf.read(io.BytesIO(reply.content), dtype="float32", always_2d=True)
    others = sum(_stem(server, view["stems"][name]["url"]) for name in ("bass", "other", "vocals"))
    assert rate == 44100 and mix.shape == others.shape
    # rescale (the job's clip mode) divides by max(1.01 * peak, 1): below full scale nothing changes.
    scale = max(1.01 * float(np.abs(others).max()), 1.0)
    assert np.abs(mix - others / scale).max() < 4 / 32768


def test_a_mix_with_gains_scales_each_stem_and_a_24_bit_mix_is_24_bit(song):
    server, view = song
    reply = _mix(server, view, {"gains": {"vocals": 2.0, "bass": 0.5, "drums": 0.0, "other": 0.0}, "format": "wav24"})
    assert reply.status_code == 200, reply.text
    assert sf.info(io.BytesIO(reply.content)).subtype == "PCM_24"
    mix, _ = sf.read(io.BytesIO(reply.content), dtype="float32", always_2d=True)
    wanted = 2.0 * _stem(server, view["stems"]["vocals"]["url"]) + 0.5 * _stem(server, view["stems"]["bass"]["url"])
    wanted /= max(1.01 * float(np.abs(wanted).max()), 1.0)
    assert np.abs(mix - wanted).max() < 4 / 32768


def test_a_mix_refuses_unknown_stems_bad_gains_and_unsigned_requests(song):
    server, view = song
    unknown = _mix(server, view, {"gains": {"piano": 1.0}})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_stem"
    assert "piano" in unknown.json()["error"]["message"]
    too_loud = _mix(server, view, {"gains": {"vocals": 2.5}})
    assert too_loud.status_code == 422 and too_loud.json()["error"]["code"] == "invalid_request"
    unsigned = _mix(server, view, {}, url=f"/api/v1/jobs/{view['id']}/mix")
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "link_invalid"


def test_a_mix_of_a_job_that_is_not_completed_is_409_and_of_an_expired_one_410(live_server, make_clip):
    server = live_server()
    failed = _completed_job(server, make_clip(seconds=1.0))
    service = server.service
    job = service.store.get_job(failed["id"])
    job.status = type(job.status)("failed")
    service.store.update_job(job)
    refused = _mix(server, failed, {})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_not_completed"
    job.status = type(job.status)("expired")
    service.store.update_job(job)
    assert _mix(server, failed, {}).status_code == 410


def test_cancel_of_a_completed_job_is_409_and_its_stems_still_download(song):
    server, view = song
    reply = httpx.post(f"{server.url}/api/v1/jobs/{view['id']}/cancel", timeout=10)
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "job_finished"
    assert httpx.get(f"{server.url}/api/v1/jobs/{view['id']}", timeout=10).json()["status"] == "completed"
    assert len(_stem(server, view["stems"]["vocals"]["url"])) > 0
    assert json.loads(httpx.get(server.url + view["stems"]["vocals"]["peaks_url"], timeout=10).content)["peaks"]
