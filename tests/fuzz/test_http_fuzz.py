"""Hostile requests through the real server: multipart bodies, form fields, Last-Event-ID, link queries.

One uvicorn on 127.0.0.1 (`server_harness.start_server`, the tiny model) serves the whole module.
Bodies are built by hand, byte by byte, so they can be what no client library would send:
broken or missing boundaries, parts without a name, non-UTF-8 names, truncated bodies, junk
before and after, duplicate fields, option values of every shape, and a file that is random
bytes, a damaged real header, or a tiny valid WAV. Whatever arrives, the answer is a status
below 500 (or 503 when the queue is full) with the error envelope; a job that gets admitted is
cancelled at once so the module stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from server_harness import base_settings, start_server, stream_events

from .budget import budget, show
from .media import front_bytes, wav_bytes

FIELDS = (
    "model",
    "stems",
    "two_stems",
    "format",
    "shifts",
    "overlap",
    "segment",
    "payload",
    "analyze",
    "priority",
    "webhook_url",
    "idempotency_key",
)
PLAUSIBLE = {
    "model": ["tiny_htdemucs", "htdemucs", "../x", "/etc/passwd", "./tiny_htdemucs", ".", "", "dsp", "x" * 300],
    "stems": ["vocals", "vocals,drums", "nope", ",", " vocals , bass ", "vocals,vocals"],
    "two_stems": ["vocals", "no_vocals", "nope", ""],
    "format": ["wav16", "wav24", "float32", "flac", "mp3", "ogg", "WAV16", "", "exe"],
    "shifts": ["0", "1", "21", "-1", "1e3", "²", "99999999999999999999999"],
    "overlap": ["0", "0.25", "0.99", "1", "nan", "inf", "-0", "1e-400"],
    "segment": ["0.5", "0", "-1", "1e308", "nan", "7.8"],
    "payload": ["url", "base64", "URL", ""],
    "analyze": ["true", "false", "1", "0", "yes", "maybe", ""],
    "priority": ["1", "5", "0", "6", "3.5", "٣"],
    "webhook_url": ["http://127.0.0.1:9/x", "ftp://x", "http://[::1]/", "x" * 2100],
    "idempotency_key": ["k", "", "k" * 201],
}
#: h11 (httpx's HTTP/1.1) refuses control bytes in header values client-side: these can be sent.
_HEADER_BYTES = [b for b in range(0x20, 0x100) if b != 0x7F]
_ENVELOPE_KEYS = {"code", "message", "request_id"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_repo) -> Iterator[Any]:
    settings = base_settings(
        tmp_path_factory.mktemp("http-fuzz"),
        tiny_model_repo,
        max_upload_mb=0.5,
        queue_size=64,
        max_concurrent=1,
        max_duration_s=5.0,
    )
    live = start_server(settings)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def finished_job(server, client) -> dict:
    """One completed job, for the event-stream and download harnesses."""
    response = client.post(
        "/api/v1/jobs",
        files={"file": ("a.wav", wav_bytes(44100, 2, 0.3))},
        data={"analyze": "false", "stems": "vocals"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    _, events = stream_events(server.url + job["events_url"], timeout_s=120)
    assert events[-1][1] == "completed", events[-1]
    return {"id": job["job_id"], "events_url": job["events_url"], "last_id": events[-1][0]}


def _quoted(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _part(draw: st.DrawFn) -> bytes:
    is_file = draw(st.booleans())
    name = draw(st.one_of(st.sampled_from(("file",) + FIELDS), st.text(max_size=12)))
    if is_file:
        body = draw(st.one_of(st.just(wav_bytes()), front_bytes(), st.binary(max_size=256)))
    else:
        body = _quoted(draw(st.one_of(st.sampled_from(PLAUSIBLE.get(name, [""])), st.text(max_size=40))))
    disposition = draw(
        st.sampled_from(
            [
                b'form-data; name="%s"',
                b"form-data; name=%s",
                b'form-data; name="%s"; filename="a.wav"',
                b'form-data; name="%s"; filename=""',
                b"form-data; name=\"%s\"; filename*=UTF-8''%%E2%%82%%AC.wav",
                b"form-data",
                b'attachment; name="%s"',
                b'form-data; name="%s"; filename="\xff\xfe.wav"',
            ]
        )
    )
    disposition = disposition % _quoted(name) if b"%s" in disposition else disposition
    headers = [b"Content-Disposition: " + disposition]
    if draw(st.booleans()):
        headers.append(
            b"Content-Type: "
            + draw(
                st.sampled_from(
                    [b"audio/wav", b"application/octet-stream", b"text/plain; charset=utf-8", b"multipart/mixed", b""]
                )
            )
        )
    if draw(st.integers(0, 9)) == 0:
        headers.append(draw(st.binary(max_size=40)))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(Content-Type header, body) of a multipart request, well-formed or damaged."""
    boundary = draw(
        st.one_of(st.just(b"b0undary"), st.text("abcXYZ0129'()+_,-./:=? ", min_size=1, max_size=80).map(str.encode))
    )
    file_head = b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    if draw(st.integers(0, 2)) == 0:  # one file of hostile bytes: the sniffer's 415 and the probe's 422
        parts = [file_head + draw(front_bytes())]
    else:
        parts = draw(st.lists(_part(), max_size=8))
        if draw(st.booleans()):  # most requests carry a file, or they stop at "send a file"
            parts.append(file_head + wav_bytes())
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    body += draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"--" + boundary + b"--", b"", b"--" + boundary]))
    damage = draw(st.sampled_from(["none", "none", "truncate", "preamble", "epilogue", "swap", "garbage"]))
    if damage == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "preamble":
        body = draw(st.binary(max_size=64)) + b"\r\n" + body
    elif damage == "epilogue":
        body += draw(st.binary(max_size=64))
    elif damage == "swap":
        body = body.replace(b"\r\n", b"\n")
    elif damage == "garbage":
        body = draw(st.binary(max_size=2048))
    content_type = draw(
        st.sampled_from(
            [
                b"multipart/form-data; boundary=%s",
                b'multipart/form-data; boundary="%s"',
                b"multipart/form-data",
                b"multipart/form-data; boundary=",
                b"multipart/form-data; boundary=%s; charset=latin-1",
                b"multipart/form-data; boundary=other",
                b"multipart/mixed; boundary=%s",
                b"application/x-www-form-urlencoded",
                b"application/json",
                b"text/plain",
            ]
        )
    )
    content_type = content_type % boundary if b"%s" in content_type else content_type
    return content_type.strip(), body  # h11 refuses to send a header value that ends in a space


def _assert_clean_answer(response: httpx.Response) -> None:
    """Below 500 (503: the queue is full) and, for an error, the one envelope."""
    event(f"status {response.status_code}")
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert _ENVELOPE_KEYS <= set(error) and error["message"], error


#: DELETE of an accepted job: 202 when it was still queued or running (cancelled), 204 when it had
#: already ended (deleted with its files).
ENDED_OR_CANCELLED = (202, 204)


@budget(1000)
@given(request=multipart(), target=st.sampled_from(["/api/v1/jobs"] * 4 + ["/api/v1/separate"]))
@example(request=(b"multipart/form-data; boundary=b0undary", b""), target="/api/v1/jobs")
@example(request=(b"multipart/form-data; boundary=b0undary", b"--b0undary--\r\n"), target="/api/v1/jobs")
@example(request=(b"multipart/form-data", b""), target="/api/v1/separate")
def test_any_multipart_body_gets_a_4xx_envelope_never_a_500(client, request, target) -> None:
    content_type, body = request
    show(content_type=content_type, body=body, target=target)
    # /separate answers with the events in its body; asking for them and hanging up cancels the job.
    headers = {"content-type": content_type, "accept": "text/event-stream" if target.endswith("separate") else "*/*"}
    with client.stream("POST", target, content=body, headers=headers) as response:
        if response.status_code < 300:
            event(f"status {response.status_code}")
            if response.status_code == 202:
                job = response.read() and response.json()
                assert client.delete(f"/api/v1/jobs/{job['job_id']}").status_code in ENDED_OR_CANCELLED
            return
        response.read()
    _assert_clean_answer(response)


@budget(500)
@given(
    fields=st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(st.sampled_from(sorted({v for values in PLAUSIBLE.values() for v in values})), st.text(max_size=30)),
        max_size=6,
    )
)
def test_any_form_fields_beside_a_valid_wav_get_202_or_a_4xx_envelope(client, fields) -> None:
    """Well-formed multipart (httpx encodes it) with option values of every shape."""
    show(fields=fields)
    response = client.post("/api/v1/jobs", files={"file": ("a.wav", wav_bytes())}, data=fields)
    if response.status_code == 202:
        assert client.delete(f"/api/v1/jobs/{response.json()['job_id']}").status_code in ENDED_OR_CANCELLED
        return
    _assert_clean_answer(response)


@budget(300)
@given(value=st.lists(st.sampled_from(_HEADER_BYTES), max_size=24).map(bytes).map(bytes.strip))
@example(value=b"\xb2")  # '²' in latin-1: str.isdigit() says yes, int() says no
@example(value=b"1\xb2")
@example(value=b"99999999999999999999999")
def test_any_last_event_id_gets_its_replay_a_204_or_a_400(client, finished_job, value) -> None:
    show(value=value)
    headers = {"last-event-id": value} if value else {}
    with client.stream("GET", finished_job["events_url"], headers=headers) as response:
        body = response.read()
    assert response.status_code in (200, 204, 400), (response.status_code, body[:300])
    if response.status_code == 400:
        assert response.json()["error"]["code"]
    elif response.status_code == 200:
        # The job has ended: the stream replays what is after the cursor and closes at its end.
        assert body.rstrip().endswith(b"}") and b"event: completed" in body
        ids = [int(match) for match in re.findall(rb"^id: (\d+)", body, re.M)]
        assert ids and ids[-1] == finished_job["last_id"]


@budget(300)
@given(
    expires=st.one_of(st.none(), st.text(max_size=20), st.integers().map(str)),
    sig=st.one_of(st.none(), st.text(max_size=40)),
    stem=st.sampled_from(["vocals", "no_vocals", "stems.zip", "vocals.wav", "%2e%2e"]),
)
@example(expires="9999999999", sig="é", stem="vocals")
@example(expires="²", sig="x", stem="vocals")
def test_any_download_link_query_is_refused_cleanly(client, finished_job, expires, sig, stem) -> None:
    """A link's `expires` and `sig` straight from the query string: 403 (or 404/422), never a 500,
    and never the file without a signature this server made."""
    show(expires=expires, sig=sig, stem=stem)
    params = {key: value for key, value in (("expires", expires), ("sig", sig)) if value is not None}
    path = (
        f"/api/v1/jobs/{finished_job['id']}/stems.zip"
        if stem == "stems.zip"
        else f"/api/v1/jobs/{finished_job['id']}/stems/{stem}"
    )
    response = client.get(path, params=params)
    assert response.status_code in (400, 403, 404, 422), (response.status_code, response.text[:300])
    _assert_clean_answer(response)


def test_the_server_is_still_healthy_after_the_fuzzing(client) -> None:
    assert client.get("/health").status_code == 200
