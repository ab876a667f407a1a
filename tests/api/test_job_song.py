"""Jobs carry their song: the file name, an editable title, the model that really ran and why.

What a user sees: lists and job views that name the song and say when another model ran than
the one asked for, a rename that stays, downloads named after the song, and a DELETE that
removes a finished job with its files.
"""

from __future__ import annotations

import io
import zipfile
from urllib.parse import quote

import httpx
import pytest

from server_harness import stream_events


def _upload(url: str, clip, name: str = "song.wav", **fields: str) -> dict:
    with clip.open("rb") as handle:
        response = httpx.post(f"{url}/api/v1/jobs", files={"file": (name, handle)}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def _separate(url: str, clip, name: str = "song.wav", **fields: str) -> dict:
    with clip.open("rb") as handle:
        response = httpx.post(f"{url}/api/v1/separate", files={"file": (name, handle)}, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _run(url: str, clip, name: str = "song.wav", **fields: str) -> dict:
    """Upload, follow the events to the end, and return the finished job's view."""
    accepted = _upload(url, clip, name, **fields)
    _, events = stream_events(url + accepted["events_url"])
    assert events[-1][1] == "completed", events[-1]
    return httpx.get(url + accepted["status_url"], timeout=10).json()


def test_a_no_weights_server_says_dsp_ran_instead_of_the_model_asked_for(live_server, make_clip):
    server = live_server(fallback="htdemucs,dsp")
    answer = _separate(server.url, make_clip(seconds=1.0), model="htdemucs_ft", analyze="false")
    assert answer["requested_model"] == "htdemucs_ft"
    assert answer["model"] == "dsp"
    assert answer["fallback"]["from"] == "htdemucs_ft"
    assert answer["fallback"]["to"] == "dsp"
    assert "used 'dsp' instead" in answer["fallback"]["reason"]
    assert "musicsep models pull htdemucs_ft" in answer["fallback"]["reason"]
    view = httpx.get(f"{server.url}/api/v1/jobs/{answer['id']}", timeout=10).json()
    assert (view["model"], view["requested_model"], view["fallback"]) == ("dsp", "htdemucs_ft", answer["fallback"])
    listed = httpx.get(f"{server.url}/api/v1/jobs", timeout=10).json()["jobs"]
    assert listed[0]["fallback"] == answer["fallback"]


def test_a_six_stem_model_that_falls_back_says_which_stems_the_job_gets(live_server, make_clip):
    server = live_server(fallback="dsp")
    accepted = _upload(server.url, make_clip(seconds=1.0), model="htdemucs_6s", analyze="false")
    _, events = stream_events(server.url + accepted["events_url"])
    started = next(data for _, kind, data in events if kind == "started")
    assert "'htdemucs_6s' has 6 stems" in started["fallback_reason"]
    assert "'dsp' gives 4 (drums, bass, other, vocals)" in started["fallback_reason"]
    assert events[-1][2]["fallback_reason"] == started["fallback_reason"]
    view = httpx.get(server.url + accepted["status_url"], timeout=10).json()
    assert sorted(view["stems"]) == ["bass", "drums", "other", "vocals"]
    assert view["fallback"]["reason"] == started["fallback_reason"]


def test_a_job_that_ran_its_model_has_no_fallback_and_names_its_options(live_server, make_clip):
    server = live_server()
    view = _run(server.url, make_clip(seconds=1.0), analyze="false", format="wav24")
    assert view["model"] == view["requested_model"] == "tiny_htdemucs"
    assert view["fallback"] is None
    assert view["options"]["format"] == "wav24"
    assert view["options"]["analyze"] is False
    assert not {"title", "webhook_url", "idempotency_key"} & set(view["options"])


def test_a_job_keeps_its_uploads_file_name_and_its_title(live_server, make_clip):
    server = live_server()
    clip = make_clip(seconds=1.0)
    named = _upload(server.url, clip, "Björk – Jóga.wav", analyze="false")
    titled = _upload(server.url, clip, "track01.wav", title="  Hunter (live) ", analyze="false")
    folder = _upload(server.url, clip, "C:\\Users\\me\\Music\\Army of Me.wav", analyze="false")
    views = {job["id"]: job for job in httpx.get(f"{server.url}/api/v1/jobs", timeout=10).json()["jobs"]}
    assert (views[named["job_id"]]["source_name"], views[named["job_id"]]["title"]) == (
        "Björk – Jóga.wav",
        "Björk – Jóga",
    )
    assert (views[titled["job_id"]]["source_name"], views[titled["job_id"]]["title"]) == (
        "track01.wav",
        "Hunter (live)",
    )
    assert (views[folder["job_id"]]["source_name"], views[folder["job_id"]]["title"]) == (
        "Army of Me.wav",
        "Army of Me",
    )


@pytest.mark.parametrize("title", ["two\nlines", "x" * 201])
def test_a_title_with_control_characters_or_too_long_is_refused_with_422(live_server, make_clip, title):
    server = live_server()
    with make_clip(seconds=1.0).open("rb") as handle:
        response = httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}, data={"title": title}, timeout=30
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "title" in response.json()["error"]["message"]


def test_a_rename_survives_a_server_restart(live_server, make_clip):
    server = live_server()
    accepted = _upload(server.url, make_clip(seconds=1.0), "take 3.wav", analyze="false")
    renamed = httpx.patch(server.url + accepted["status_url"], json={"title": "Final Mix"}, timeout=10)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Final Mix"
    _, events = stream_events(server.url + accepted["events_url"])  # the run does not undo the rename
    assert events[-1][1] == "completed"
    server.stop()
    again = live_server()
    view = httpx.get(again.url + accepted["status_url"], timeout=10).json()
    assert (view["title"], view["source_name"], view["status"]) == ("Final Mix", "take 3.wav", "completed")
    reset = httpx.patch(again.url + accepted["status_url"], json={"title": None}, timeout=10)
    assert reset.json()["title"] == "take 3"


def test_a_rename_of_an_unknown_job_is_404_and_a_bad_title_422(live_server, make_clip):
    server = live_server()
    missing = httpx.patch(f"{server.url}/api/v1/jobs/{'0' * 32}", json={"title": "x"}, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "job_not_found"
    accepted = _upload(server.url, make_clip(seconds=1.0), analyze="false")
    for body in ({"title": "bell\x07"}, {"name": "x"}, {"title": 5}):
        refused = httpx.patch(server.url + accepted["status_url"], json=body, timeout=10)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["code"] == "invalid_request"


def test_downloads_are_named_after_the_song(live_server, make_clip):
    server = live_server()
    view = _run(server.url, make_clip(seconds=1.0), "Jóga.wav", analyze="false")
    stem = httpx.get(server.url + view["stems"]["vocals"]["url"], timeout=30)
    assert stem.status_code == 200
    assert stem.headers["content-disposition"] == (
        "attachment; filename=\"Joga - vocals.wav\"; filename*=UTF-8''" + quote("Jóga - vocals.wav")
    )
    archive = httpx.get(server.url + view["zip_url"], timeout=30)
    assert archive.headers["content-disposition"].endswith("filename*=UTF-8''" + quote("Jóga - stems.zip"))
    assert zipfile.ZipFile(io.BytesIO(archive.content)).testzip() is None
    httpx.patch(f"{server.url}/api/v1/jobs/{view['id']}", json={"title": 'AC/DC "Live"'}, timeout=10)
    renamed = httpx.get(server.url + view["stems"]["drums"]["url"], timeout=30)
    assert 'filename="AC_DC _Live_ - drums.wav"' in renamed.headers["content-disposition"]


def test_deleting_a_finished_job_removes_its_files_and_then_it_is_404(live_server, make_clip):
    server = live_server()
    view = _run(server.url, make_clip(seconds=1.0), analyze="false")
    folder = server.settings.data_dir / "jobs" / view["id"]
    assert any(folder.rglob("*.wav"))
    deleted = httpx.delete(f"{server.url}/api/v1/jobs/{view['id']}", timeout=10)
    assert deleted.status_code == 204
    assert not folder.exists()
    for answer in (
        httpx.get(f"{server.url}/api/v1/jobs/{view['id']}", timeout=10),
        httpx.delete(f"{server.url}/api/v1/jobs/{view['id']}", timeout=10),
        httpx.get(f"{server.url}/api/v1/jobs/{view['id']}/events", timeout=10),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "job_not_found"
    assert httpx.get(server.url + view["stems"]["vocals"]["url"], timeout=10).status_code == 404
    assert view["id"] not in {job["id"] for job in httpx.get(f"{server.url}/api/v1/jobs", timeout=10).json()["jobs"]}
