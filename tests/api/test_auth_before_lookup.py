"""Credentials (or a link's signature) are checked before any job lookup.

Downloads looked the job up first, so a caller without credentials learnt from 404 / 403 / 404
whether an id existed, whether it had finished and which stems it had. Every route that takes a
job id must answer such a caller the same for an existing job, a missing one, a known stem and
an unknown one.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from scenarios import PATH_TRICKS
from server_harness import stream_events

KEY = "k" * 24
MISSING = "0123456789abcdef0123456789abcdef"


def _answer(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory, tiny_model_repo):
    """One completed job on a server with auth on (module scope: one separation for every case)."""
    import soundfile as sf

    from conftest import synth_music
    from server_harness import base_settings, start_server

    folder = tmp_path_factory.mktemp("auth_first")
    clip = folder / "song.wav"
    sf.write(str(clip), synth_music(1.0).T, 44100)
    server = start_server(base_settings(folder / "data", tiny_model_repo, api_keys=[KEY]))
    try:
        with clip.open("rb") as handle:
            accepted = httpx.post(
                f"{server.url}/api/v1/jobs",
                files={"file": ("song.wav", handle)},
                data={"analyze": "false"},
                headers={"X-API-Key": KEY},
                timeout=60,
            ).json()
        status, events = stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed"
        yield server, accepted["job_id"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs/{id}"),
        ("DELETE", "/api/v1/jobs/{id}"),
        ("GET", "/api/v1/jobs/{id}/events"),
        ("GET", "/api/v1/jobs/{id}/stems/vocals"),
        ("GET", "/api/v1/jobs/{id}/stems/no_such_stem"),
        ("GET", "/api/v1/jobs/{id}/stems.zip"),
    ],
)
def test_without_credentials_an_existing_job_looks_like_a_missing_one(finished_job, method, path):
    server, job_id = finished_job
    existing = httpx.request(method, server.url + path.format(id=job_id))
    missing = httpx.request(method, server.url + path.format(id=MISSING))
    assert existing.status_code in (401, 403)
    assert _answer(existing) == _answer(missing)


def test_a_stem_download_without_a_signature_never_says_which_stems_exist(finished_job):
    server, job_id = finished_job
    answers = {
        _answer(httpx.get(f"{server.url}/api/v1/jobs/{job_id}/stems/{stem}"))
        for stem in ("vocals", "drums", "no_such_stem", "input", "%2e%2e")
    }
    assert len(answers) == 1
    assert next(iter(answers))[:2] == (403, "link_invalid")


def test_with_credentials_the_lookup_still_answers(finished_job):
    server, job_id = finished_job
    headers = {"X-API-Key": KEY}
    assert httpx.get(f"{server.url}/api/v1/jobs/{MISSING}", headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/api/v1/jobs/{MISSING}/stems/vocals", headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/api/v1/jobs/{job_id}/stems/nope", headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/api/v1/jobs/{job_id}/stems/vocals", headers=headers).status_code == 200


@pytest.mark.parametrize("stem", PATH_TRICKS)
def test_with_credentials_unknown_stems_and_path_tricks_are_404(finished_job, stem):
    server, job_id = finished_job
    where = urlsplit(server.url)
    # http.client sends the path byte for byte (httpx would normalise the dot segments away).
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    connection.request("GET", f"/api/v1/jobs/{job_id}/stems/{stem}", headers={"X-API-Key": KEY})
    response = connection.getresponse()
    assert response.status == 404
    response.read()
    connection.close()
