"""Limits and bad inputs are refused early, with the one error envelope."""

from __future__ import annotations

import socket
import struct

import httpx
import pytest

from http_target import http_target
from server_harness import stream_events

LIMIT_MB = 0.25
LIMIT = int(LIMIT_MB * 1024 * 1024)
SLACK = 64 * 1024


def _envelope(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


def _read_status(sock: socket.socket) -> int:
    sock.settimeout(20)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection without answering"
        data += chunk
    return int(data.split(b" ", 2)[1])


def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


@pytest.fixture
def server(live_server):
    return live_server(max_upload_mb=LIMIT_MB)


def test_413_on_chunked_body_before_limit_plus_64k_was_sent(server):
    """No Content-Length at all: the server counts, and answers while we stall at limit + 64 KiB."""
    host, port = server.url.removeprefix("http://").split(":")
    boundary = "b0undary"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode()
        )
        payload = _multipart_head(boundary) + b"RIFF" + b"\0" * (LIMIT + SLACK)
        payload = payload[: LIMIT + SLACK]
        for start in range(0, len(payload), 16 * 1024):
            piece = payload[start : start + 16 * 1024]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        # Nothing more is sent: an answer now proves the server decided on what it had read.
        assert _read_status(sock) == 413


def test_413_when_content_length_understates_the_body(server):
    """Content-Length lies low: the server reads no more than it claims and never stores more."""
    host, port = server.url.removeprefix("http://").split(":")
    boundary = "b0undary"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {LIMIT + SLACK // 2}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode()
        )
        payload = _multipart_head(boundary) + b"\0" * (LIMIT + SLACK)
        sock.sendall(payload[: LIMIT + SLACK // 2])
        assert _read_status(sock) == 413


def test_413_at_once_when_content_length_says_too_much(server):
    """Refused on the headers alone: not one byte of body is sent."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {LIMIT * 4}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n\r\n"
            ).encode()
        )
        assert _read_status(sock) == 413


def test_413_envelope_for_an_honest_large_upload(server, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF" + b"\0" * (LIMIT + SLACK))
    with big.open("rb") as handle:
        response = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("big.wav", handle)})
    assert response.status_code == 413
    _envelope(response)


def test_415_for_text_uploaded_as_audio(server):
    response = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", b"hello, I am not audio" * 10)})
    assert response.status_code == 415
    assert _envelope(response)["code"] == "unsupported_format"


def test_422_for_a_corrupt_wav(server, make_clip):
    clip = make_clip(seconds=1.0).read_bytes()
    corrupt = clip[:12] + b"\xff" * 64  # a RIFF/WAVE head with garbage where the chunks should be
    response = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", corrupt)})
    assert response.status_code == 422
    assert _envelope(response)["code"] == "invalid_audio"


def test_422_for_bad_options_and_unknown_model(server, make_clip):
    clip = make_clip(seconds=1.0)
    response = httpx.post(f"{server.url}/api/v1/jobs", data={"shifts": "-1"}, files={"file": clip.open("rb")})
    assert response.status_code == 422
    assert "shifts" in _envelope(response)["message"]
    response = httpx.post(f"{server.url}/api/v1/jobs", data={"model": "no_such_model"}, files={"file": clip.open("rb")})
    assert response.status_code == 422
    assert _envelope(response)["code"] == "model_unavailable"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"audio_url": "ftp://example.com/a.mp3"}, "http:// or https://"),
        ({"audio_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"audio_url": "https://"}, "with a host name"),
        ({"audio_url": "not a url"}, "http:// or https://"),
        ({"model": "tiny_htdemucs"}, "audio_url"),
        ({"audio_url": "https://example.com/a.mp3", "shifts": -1}, "shifts"),
        ({"audio_url": "https://example.com/a.mp3", "colour": "blue"}, "colour"),
        ("[1, 2", "JSON"),
    ],
)
def test_422_for_a_bad_audio_url_body(server, body, where):
    """Only the shape is checked by the API; addresses are checked by whoever fetches (test_audio_url.py)."""
    if isinstance(body, str):
        response = httpx.post(f"{server.url}/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    else:
        response = httpx.post(f"{server.url}/api/v1/jobs", json=body)
    assert response.status_code == 422
    error = _envelope(response)
    assert error["code"] == "invalid_request"
    assert where in error["message"]


ENSEMBLE_MISTAKES = [
    ({"ensemble": "tiny_htdemucs,tiny_hdemucs", "ensemble_weights": "1,2,3"}, "3 weights for 2 ensemble models"),
    ({"ensemble": "tiny_htdemucs,tiny_hdemucs", "ensemble_method": "mean"}, "avg_wave"),
    ({"ensemble": "a,b,c,d,e"}, "at most 4"),
    ({"ensemble": "tiny_htdemucs,../weights"}, "model names are 1 to 64"),
    ({"ensemble_weights": "1,1"}, "ensemble_weights needs an ensemble"),
    (
        {"ensemble": "tiny_htdemucs,tiny_hdemucs", "ensemble_method": "max_spec", "ensemble_weights": "1,2"},
        "avg_wave only",
    ),
]


@pytest.mark.parametrize(("fields", "where"), ENSEMBLE_MISTAKES)
def test_422_for_bad_ensemble_options_in_a_form_or_a_json_body(server, make_clip, fields, where):
    clip = make_clip(seconds=1.0)
    uploaded = httpx.post(f"{server.url}/api/v1/jobs", data=fields, files={"file": clip.open("rb")})
    as_json = httpx.post(f"{server.url}/api/v1/jobs", json={"audio_url": "https://example.com/a.mp3", **fields})
    for response in (uploaded, as_json):
        assert response.status_code == 422
        error = _envelope(response)
        assert error["code"] == "invalid_request"
        assert where in error["message"]


def test_an_unknown_ensemble_member_is_refused_before_the_job_exists(server, make_clip):
    """Was: 202, then a `failed` event once the worker tried to load the member."""
    clip = make_clip(seconds=1.0)
    jobs_before = len(httpx.get(f"{server.url}/api/v1/jobs").json()["jobs"])
    response = httpx.post(
        f"{server.url}/api/v1/jobs", data={"ensemble": "tiny_htdemucs,no_such_model"}, files={"file": clip.open("rb")}
    )
    assert response.status_code == 422, response.text
    error = _envelope(response)
    assert error["code"] == "model_unavailable"
    assert "no_such_model" in error["message"] and "ensemble" in error["message"]
    assert len(httpx.get(f"{server.url}/api/v1/jobs").json()["jobs"]) == jobs_before


def test_422_for_a_missing_file(server):
    response = httpx.post(f"{server.url}/api/v1/jobs", data={"model": "tiny_htdemucs"})
    assert response.status_code == 422
    assert "audio_url" in _envelope(response)["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/0123456789abcdef0123456789abcdef",
        "/api/v1/jobs/0123456789abcdef0123456789abcdef/events",
        "/api/v1/jobs/not-a-job",
        "/api/v1/jobs/..%2F..%2Fetc",
    ],
)
def test_404_for_unknown_jobs(server, path):
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 404
    _envelope(response)


def test_request_id_is_echoed_when_acceptable(server):
    response = httpx.get(f"{server.url}/api/v1/jobs/nope", headers={"X-Request-Id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["error"]["request_id"] == "trace-42"
    response = httpx.get(f"{server.url}/health", headers={"X-Request-Id": "bad id\twith tab"})
    assert response.headers["x-request-id"] != "bad id\twith tab"


# --- inputs that once answered 500 ---------------------------------------------

KEY = "k" * 24
SOME_JOB = "0123456789abcdef0123456789abcdef"


def _wav(channels: int = 2, tag: int = 1, frames: int = 4410) -> bytes:
    """A canonical WAV header claiming `channels` and format `tag`, then silence."""
    block = channels * 2
    fmt = struct.pack("<HHIIHH", tag, channels, 44100, 44100 * block, block, 16)
    data = bytes(frames * block)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


@pytest.fixture
def keyed(live_server):
    return live_server(api_keys=[KEY], basic_auth=["ann:secret-pass"])


@pytest.mark.parametrize("token", ["².abc", "²²²²²²²²²².abc", "٣٣٣٣٣٣٣٣٣٣.abc", "9999999999.é", "9999999999.²"])
def test_unicode_digits_or_letters_in_a_stream_token_are_401_not_500(keyed, token):
    """`str.isdigit()` took '²' (then int() raised) and compare_digest raised on non-ASCII text."""
    response = httpx.get(f"{keyed.url}/api/v1/jobs/{SOME_JOB}/events", params={"token": token})
    assert response.status_code == 401
    assert _envelope(response)["code"] == "unauthorized"


@pytest.mark.parametrize("value", ["²", "²²²²", "é:x", "YW5uOnNlY3JldC1wYXNz²"])
def test_a_basic_header_that_is_not_ascii_is_401_not_500(keyed, value):
    """base64.b64decode raises a plain ValueError (not binascii.Error) on non-ASCII text."""
    response = httpx.get(f"{keyed.url}/api/v1/jobs", headers={"Authorization": f"Basic {value}".encode("latin-1")})
    assert response.status_code == 401
    assert _envelope(response)["code"] == "unauthorized"


def test_an_unknown_wav_codec_is_415_not_500(server):
    response = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", _wav(tag=0x1234))})
    assert response.status_code == 415
    assert _envelope(response)["code"] == "unsupported_format"


def test_a_255_channel_wav_is_422_naming_the_channel_limit(server):
    response = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("song.wav", _wav(channels=255, frames=100))})
    assert response.status_code == 422
    error = _envelope(response)
    assert error["code"] == "invalid_audio"
    assert "255 channels" in error["message"] and "24" in error["message"]


def test_channels_without_a_standard_layout_fail_the_job_as_invalid_audio(server):
    """9 unlabelled channels pass the header check but cannot be down-mixed: was internal_error."""
    response = httpx.post(
        f"{server.url}/api/v1/jobs", files={"file": ("song.wav", _wav(channels=9))}, data={"analyze": "false"}
    )
    assert response.status_code == 202, response.text
    status, events = stream_events(server.url + response.json()["events_url"])
    assert events[-1][1] == "failed"
    assert events[-1][2]["code"] == "invalid_audio"
    assert "9 channels" in events[-1][2]["message"]


@pytest.mark.parametrize("body", [b"", b"--xx--\r\n"])
def test_an_empty_multipart_body_is_422(server, body):
    response = httpx.post(
        f"{server.url}/api/v1/jobs", content=body, headers={"Content-Type": "multipart/form-data; boundary=xx"}
    )
    assert response.status_code == 422
    assert "file" in _envelope(response)["message"]


def test_a_multipart_body_without_a_file_part_is_422(server):
    response = httpx.post(f"{server.url}/api/v1/jobs", files={"model": (None, "tiny_htdemucs")})
    assert response.status_code == 422
    assert "file" in _envelope(response)["message"]


def test_separate_as_json_answers_a_refused_audio_url_with_422(server):
    """The client's URL leads to a loopback address (allowance off): its fault, not a 500.
    Loopback on purpose: even a check that failed would not let a connection leave the machine."""
    response = httpx.post(
        f"{server.url}/api/v1/separate",
        json={"audio_url": "http://127.0.0.1:9/a.wav"},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert response.status_code == 422
    error = _envelope(response)
    assert error["code"] == "url_refused"
    assert "loopback" in error["message"]


def test_separate_as_json_answers_an_audio_url_that_is_404_with_422(live_server):
    server = live_server(allow_loopback_urls=True)
    with http_target() as target:
        response = httpx.post(
            f"{server.url}/api/v1/separate",
            json={"audio_url": f"{target.url}/status/404"},
            headers={"Accept": "application/json"},
            timeout=60,
        )
    assert response.status_code == 422
    error = _envelope(response)
    assert error["code"] == "url_fetch_failed"
    assert "404" in error["message"]
