"""`audio_url` inputs on the embedded server: the SSRF-safe download, through the API.

The URL is served by a small HTTP server on 127.0.0.1 (tests/http_target.py). Reaching it needs
the test-only loopback allowance (`allow_loopback_urls`), which lets 127.0.0.1 / ::1 through and
nothing else; every refusal of a direct URL is tested with the allowance off. A redirect can only
be tested from a first hop the server may fetch, and here that is loopback: so the redirect
refusals run with the allowance on, and show that it does not open private or metadata ranges.
The same scenarios run on the scale-out deployment in tests/scaleout/test_cluster_scenarios.py.
"""

from __future__ import annotations

import httpx

from http_target import http_target
from scenarios import audio_url_job_equals_upload, audio_url_refused, post_url_job, run_to_end


def test_an_audio_url_job_completes_with_the_same_stems_as_an_upload(live_server, make_clip):
    server = live_server(allow_loopback_urls=True)
    with http_target() as target:
        audio_url_job_equals_upload([server.url], make_clip(seconds=3.0), target)
        assert [path for path, _ in target.requests] == ["/audio"]
        # POST /separate takes the same JSON body.
        reply = httpx.post(
            f"{server.url}/api/v1/separate",
            json={"audio_url": f"{target.url}/audio", "stems": "vocals", "analyze": False},
            headers={"Accept": "application/json"},
            timeout=120,
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "completed" and set(reply.json()["stems"]) == {"vocals"}


def test_audio_urls_at_non_public_addresses_are_refused_with_a_clear_reason(live_server):
    server = live_server()  # the loopback allowance is off, as in production
    with http_target() as target:
        port = target.url.rsplit(":", 1)[1]
        expected = {
            f"{target.url}/audio": "127.0.0.1 is a loopback address, not a public one",
            "http://10.0.0.1/a.wav": "10.0.0.1 is a private address, not a public one",
            "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is the cloud metadata service's address",
            f"http://localhost:{port}/audio": "'localhost' resolves to 127.0.0.1, a loopback address",
            # A name (not an address literal) that the system resolver turns into 10.0.0.1: the
            # only name resolving to a private address here, offline. tests/service/test_fetch.py
            # covers a DNS answer with a private address through an injected resolver.
            "http://10.1/a.wav": "'10.1' resolves to 10.0.0.1, a private address",
        }
        for url, reason in expected.items():
            assert audio_url_refused(server.url, url) == f"audio_url refused: {reason}" + (
                "" if reason.endswith("not a public one") else ", not a public one"
            ), url
        assert target.requests == []  # refused before any connection


def test_a_redirect_to_a_non_public_address_is_refused(live_server):
    server = live_server(allow_loopback_urls=True)
    with http_target() as target:
        for where, reason in [
            ("http://10.0.0.1/a.wav", "10.0.0.1 is a private address"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata"),
        ]:
            message = audio_url_refused(server.url, f"{target.url}/redirect?to={where}")
            assert message.startswith(f"audio_url refused: the URL redirected to {where}; {reason}"), message
        assert [path for path, _ in target.requests] == [
            "/redirect?to=http://10.0.0.1/a.wav",
            "/redirect?to=http://169.254.169.254/latest/meta-data/",
        ]


def test_an_audio_url_that_fails_or_is_not_audio_fails_the_job_clearly(live_server):
    server = live_server(allow_loopback_urls=True)
    with http_target() as target:
        target.audio = b"<html>not a song</html>"
        failures = {
            f"{target.url}/status/404": (
                "url_fetch_failed",
                "audio_url could not be downloaded: the URL answered HTTP 404",
            ),
            f"{target.url}/audio": ("unsupported_format", "the file at audio_url: the file is not an audio format"),
        }
        for url, (code, message) in failures.items():
            events = run_to_end(server.url, post_url_job(server.url, url))
            assert events[-1][1] == "failed"
            assert events[-1][2]["code"] == code
            assert events[-1][2]["message"].startswith(message), events[-1][2]
