"""Downloads (signed, Range, zip, allow-listed names), auth with stream tokens, expiry (410),
inline base64 payloads and their cap.

The Range scenario is shared with the scale-out suite (tests/scenarios.py), where it runs on a
presigned S3 URL. The rest is embedded-only by nature: a zip of local files, the API's own
download route (path tricks, signatures; in S3 mode the bucket serves the stems), the in-process
expiry cleaner, auth settings of an in-process server."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
import zipfile
from urllib.parse import urlsplit

import httpx
import pytest

from scenarios import PATH_TRICKS, range_and_disposition
from server_harness import stream_events

KEY = "k" * 24


def _run_job(url: str, clip, headers: dict[str, str] | None = None, **fields: str) -> tuple[dict, list]:
    with clip.open("rb") as handle:
        response = httpx.post(
            f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data=fields, headers=headers or {}, timeout=60
        )
    assert response.status_code == 202, response.text
    accepted = response.json()
    status, events = stream_events(url + accepted["events_url"])
    assert status == 200
    return accepted, events


@pytest.fixture
def completed(live_server, make_clip):
    server = live_server()
    accepted, events = _run_job(server.url, make_clip(seconds=3.0))
    assert events[-1][1] == "completed"
    return server, accepted, events[-1][2]


def test_range_request_and_content_disposition(completed):
    server, _, final = completed
    info = final["stems"]["vocals"]
    range_and_disposition(server.url + info["url"], info)


def test_zip_holds_every_stem(completed):
    server, accepted, final = completed
    job = httpx.get(server.url + accepted["status_url"]).json()
    archive = httpx.get(server.url + job["zip_url"])
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        sizes = {entry.filename.rsplit(".", 1)[0]: entry.file_size for entry in zipped.infolist()}
    assert sizes == {name: info["bytes"] for name, info in final["stems"].items()}


@pytest.mark.parametrize("stem", PATH_TRICKS)
def test_unknown_stems_and_path_tricks_are_refused(completed, stem):
    """Another stem's signature does not cover them: 403 before any lookup (404 for a caller with
    credentials: tests/api/test_auth_before_lookup.py)."""
    server, accepted, final = completed
    query = final["stems"]["vocals"]["url"].split("?", 1)[1]
    # http.client sends the path byte for byte (httpx would normalise the dot segments away).
    where = urlsplit(server.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    connection.request("GET", f"{accepted['status_url']}/stems/{stem}?{query}")
    response = connection.getresponse()
    assert response.status in (403, 404)  # 404: dot segments that leave the stems route
    assert set(json.loads(response.read())["error"]) == {"code", "message", "request_id"}
    connection.close()


def test_links_need_their_signature(completed):
    server, _, final = completed
    url = final["stems"]["vocals"]["url"]
    assert httpx.get(server.url + url.split("?")[0]).status_code == 403
    assert httpx.get(server.url + url.replace("sig=", "sig=x")).status_code == 403
    other = final["stems"]["drums"]["url"].split("?")[1]
    assert httpx.get(server.url + url.split("?")[0] + "?" + other).status_code == 403


def test_expired_results_answer_410_and_their_files_are_gone(completed):
    server, accepted, final = completed
    job_dir = server.settings.data_dir / "jobs" / accepted["job_id"]
    assert job_dir.exists()
    assert server.service.cleanup_expired(now=time.time() + server.settings.result_ttl_s + 1) == 1
    assert not job_dir.exists()
    for path in (accepted["status_url"], accepted["events_url"], final["stems"]["vocals"]["url"]):
        response = httpx.get(server.url + path)
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "job_expired"


def test_base64_payload_inlines_stems_and_the_cap_fails_clearly(live_server, make_clip):
    server = live_server(max_inline_mb=1.0)
    _, events = _run_job(server.url, make_clip(seconds=1.0), payload="base64", stems="vocals")
    stem = events[-1][2]["stems"]["vocals"]
    assert "url" not in stem
    assert len(base64.b64decode(stem["data"])) == stem["bytes"]
    # 3 s of four 16-bit stereo stems is 2.1 MB, twice the cap.
    _, events = _run_job(server.url, make_clip(seconds=3.0), payload="base64", analyze="false")
    assert "stem" not in [kind for _, kind, _ in events]  # no links to files that are then removed
    assert events[-1][1] == "failed"
    assert events[-1][2]["code"] == "payload_too_large"
    assert "payload=url" in events[-1][2]["message"]


def test_auth_keys_basic_and_stream_tokens(live_server, make_clip):
    server = live_server(api_keys=[KEY], basic_auth=["ann:secret-pass"])
    clip = make_clip(seconds=1.0)
    with clip.open("rb") as handle:
        refused = httpx.post(f"{server.url}/api/v1/jobs", files={"file": handle})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert httpx.get(f"{server.url}/api/v1/jobs", headers={"X-API-Key": "w" * 24}).status_code == 401
    assert httpx.get(f"{server.url}/api/v1/jobs", headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/jobs", auth=("ann", "secret-pass")).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/jobs", auth=("ann", "wrong")).status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200

    accepted, events = _run_job(server.url, clip, headers={"Authorization": f"Bearer {KEY}"})
    assert "token=" in accepted["events_url"]  # EventSource cannot send headers: the URL carries a token
    assert events[-1][1] == "completed"
    bare = f"{server.url}/api/v1/jobs/{accepted['job_id']}/events"
    assert httpx.get(bare).status_code == 401
    assert httpx.get(bare + "?token=1.forged").status_code == 401
    # Signed download links work without credentials (a browser's <audio src>).
    assert httpx.get(server.url + events[-1][2]["stems"]["vocals"]["url"]).status_code == 200


def test_cors_star_with_credentials_is_refused():
    from pydantic import ValidationError

    from musicsep.config import Settings

    with pytest.raises(ValidationError):
        Settings(cors_origins=["*"], cors_allow_credentials=True)


def test_openapi_documents_the_upload_form(live_server):
    server = live_server()
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "202" in spec["paths"]["/api/v1/jobs"]["post"]["responses"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_idempotency_key_returns_the_first_job_and_jobs_are_listed(live_server, make_clip):
    server = live_server()
    clip = make_clip(seconds=1.0)
    answers = []
    for _ in range(2):
        with clip.open("rb") as handle:
            answers.append(
                httpx.post(
                    f"{server.url}/api/v1/jobs",
                    files={"file": ("a.wav", handle)},
                    data={"idempotency_key": "upload-7", "analyze": "false"},
                )
            )
    assert answers[0].json()["job_id"] == answers[1].json()["job_id"]
    assert "idempotent-replayed" not in answers[0].headers
    assert answers[1].headers["idempotent-replayed"] == "true"
    stream_events(server.url + answers[0].json()["events_url"])
    listed = httpx.get(f"{server.url}/api/v1/jobs", params={"status": "completed"}).json()["jobs"]
    assert [job["id"] for job in listed] == [answers[0].json()["job_id"]]


def _envelope_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    return body["error"]


def test_links_with_unicode_digits_or_non_ascii_signatures_are_403_not_500(completed):
    """`sig=é` once reached compare_digest as non-ASCII text (TypeError: 500);
    `expires=²` was a 422 and `expires=+<n>` a second spelling of the same link (pydantic's int)."""
    server, _, final = completed
    path, query = final["stems"]["vocals"]["url"].split("?")
    expires = dict(pair.split("=", 1) for pair in query.split("&"))["expires"]
    sig = dict(pair.split("=", 1) for pair in query.split("&"))["sig"]
    for params in (
        {"expires": expires, "sig": "é" + sig[1:]},
        {"expires": expires, "sig": "²"},
        {"expires": "²", "sig": sig},
        {"expires": "٣" * len(expires), "sig": sig},
        {"expires": f"+{expires}", "sig": sig},
        {"expires": f" {expires}", "sig": sig},
        {"expires": f"{expires}.0", "sig": sig},
    ):
        response = httpx.get(server.url + path, params=params)
        assert response.status_code == 403, (params, response.text)
        assert _envelope_of(response)["code"] == "link_invalid"
    assert httpx.get(server.url + path, params={"expires": expires, "sig": sig}).status_code == 200


def test_range_refusals_are_in_the_error_envelope(completed):
    """Starlette once answered with an empty text/plain 416 (and a plain 400)."""
    server, _, final = completed
    info = final["stems"]["vocals"]
    for ranged in ("bytes=999999999-", "bytes=999999999-1000000000"):
        response = httpx.get(server.url + info["url"], headers={"Range": ranged})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{info['bytes']}"
        assert _envelope_of(response)["code"] == "range_not_satisfiable"
    response = httpx.get(server.url + info["url"], headers={"Range": "bytes=500-100"})
    assert response.status_code == 400
    assert _envelope_of(response)["code"] == "range_malformed"
