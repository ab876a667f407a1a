"""SSRF-safe downloads of `audio_url` inputs: only public http(s) addresses, checked at every redirect and pinned.

Refusals are tested with the loopback allowance off. Where a test must reach the local target
server (redirect checks, pinning), the allowance is on: it lets 127.0.0.1 through and nothing
else, which the redirect tests show. "A hostname resolving to a private address" uses an injected
resolver: there is no DNS server here that could answer with one (a fake for what cannot run).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from http_target import http_target
from musicsep.model.errors import Cancelled
from musicsep.service.addresses import address_allowed
from musicsep.service.fetch import FetchLimits, UrlFetchFailed, UrlRefused, fetch_to_file

STRICT = FetchLimits(timeout_s=10)
LOOPBACK_OK = FetchLimits(timeout_s=10, allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.wav",
        "http://localhost:9/a.wav",
        "http://[::1]:9/a.wav",
        "http://10.1.2.3/a.wav",
        "http://192.168.0.10/a.wav",
        "http://172.16.5.5/a.wav",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.wav",
        "http://0.0.0.0/a.wav",
        "http://[::ffff:10.0.0.1]/a.wav",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://2130706433/a.wav",
    ],
)
def test_non_public_addresses_are_refused_before_any_connection(url, tmp_path):
    with pytest.raises(UrlRefused, match="address, not a public one"):
        fetch_to_file(url, tmp_path / "in", STRICT)
    assert not (tmp_path / "in").exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.wav", "gopher://x/", "not a url"])
def test_only_http_and_https_are_accepted(url, tmp_path):
    with pytest.raises(UrlRefused, match="http"):
        fetch_to_file(url, tmp_path / "in", STRICT)


def test_a_hostname_resolving_to_a_private_address_is_refused(tmp_path):
    with pytest.raises(UrlRefused, match="'files.example' resolves to 10.0.0.7, a private address"):
        fetch_to_file("https://files.example/a.wav", tmp_path / "in", STRICT, resolve=lambda h, p: ["10.0.0.7"])


def test_one_private_address_among_public_ones_is_enough_to_refuse(tmp_path):
    with pytest.raises(UrlRefused):
        fetch_to_file(
            "https://files.example/a.wav", tmp_path / "in", STRICT, resolve=lambda h, p: ["8.8.8.8", "10.0.0.7"]
        )


def test_the_loopback_allowance_lets_only_loopback_through():
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("8.8.8.8")
    for address in ("10.0.0.1", "169.254.169.254", "192.168.1.1", "fe80::1", "fc00::1"):
        assert not address_allowed(address, allow_loopback=True)


def test_a_file_is_downloaded_with_the_loopback_allowance(tmp_path):
    with http_target() as target:
        target.audio = b"RIFF" + bytes(5000)
        assert fetch_to_file(f"{target.url}/audio", tmp_path / "in", LOOPBACK_OK) == 5004
    assert (tmp_path / "in").read_bytes() == target.audio


@pytest.mark.parametrize(
    "where", ["http://10.0.0.1/a.wav", "http://169.254.169.254/latest/meta-data/", "http://private.example/a.wav"]
)
def test_a_redirect_to_a_private_address_is_refused(where, tmp_path):
    def resolve(host: str, port: int) -> list[str]:
        return {"private.example": ["192.168.7.7"]}.get(host, [host])

    with http_target() as target:
        with pytest.raises(UrlRefused, match=f"redirected to {re.escape(where)}; .* not a public one"):
            fetch_to_file(f"{target.url}/redirect?to={where}", tmp_path / "in", LOOPBACK_OK, resolve=resolve)
        assert [path for path, _ in target.requests] == [f"/redirect?to={where}"]


def test_the_connection_goes_to_the_checked_address_not_a_second_dns_answer(tmp_path):
    """DNS rebinding: a second lookup would say 10.0.0.1; the fetch never asks twice per hop."""
    answers = iter([["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["10.0.0.1"])

    with http_target() as target:
        target.audio = b"ok"
        port = target.url.rsplit(":", 1)[1]
        assert fetch_to_file(f"http://media.example:{port}/audio", tmp_path / "in", LOOPBACK_OK, resolve=rebinding) == 2
        ((_, headers),) = target.requests
    assert headers["Host"] == f"media.example:{port}"


def test_redirects_are_followed_and_counted(tmp_path):
    with http_target() as target:
        target.audio = b"data"
        hop = f"{target.url}/redirect?to={target.url}/audio"
        assert fetch_to_file(hop, tmp_path / "in", LOOPBACK_OK) == 4
        with pytest.raises(UrlFetchFailed, match="redirected more than 0 times"):
            fetch_to_file(hop, tmp_path / "in", FetchLimits(max_redirects=0, allow_loopback=True))


def test_the_size_cap_is_counted_not_trusted(tmp_path):
    with http_target() as target, pytest.raises(UrlFetchFailed, match="larger than"):
        fetch_to_file(f"{target.url}/big", tmp_path / "in", FetchLimits(max_bytes=100_000, allow_loopback=True))
    assert not (tmp_path / "in").exists()


def test_error_statuses_and_dead_ports_fail_clearly(tmp_path):
    with http_target() as target:
        with pytest.raises(UrlFetchFailed, match="HTTP 404"):
            fetch_to_file(f"{target.url}/status/404", tmp_path / "in", LOOPBACK_OK)
        dead = target.url
    with pytest.raises(UrlFetchFailed, match="connection failed"):
        fetch_to_file(f"{dead}/audio", tmp_path / "in", LOOPBACK_OK)


def test_a_cancel_ends_a_download_from_a_silent_server_at_once_and_leaves_no_file(tmp_path):
    """A server that accepts the connection and never answers: the cancel does not wait for the
    URL's timeout (60 s here), and nothing is left at the destination."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/song.wav"
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            fetch_to_file(url, tmp_path / "in", FetchLimits(timeout_s=60, allow_loopback=True), cancelled=cancel.is_set)
        assert time.monotonic() - started < 3
    assert not (tmp_path / "in").exists()


#: Run inside `unshare -n` (only `lo` up): a real server, real jobs, the real fetch path. Even if
#: the check let a URL through, the connection could go nowhere but this namespace's loopback.
_IN_NAMESPACE = """
import json, sys, tempfile
from musicsep.config import Settings
from scenarios import audio_url_refused
from server_harness import start_server

server = start_server(Settings(data_dir=tempfile.mkdtemp(), default_model="dsp", fallback="none", offline=True,
                               device="cpu"))
try:
    print(json.dumps({url: audio_url_refused(server.url, url) for url in sys.argv[1:]}))
finally:
    server.stop()
"""


def test_ipv6_forms_embedding_ipv4_are_refused_end_to_end_inside_a_network_namespace(tmp_path):
    urls = [
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::a00:1]/a.wav",
        "http://[::7f00:1]/a.wav",
        "http://[2002:7f00:1::]/a.wav",
        "http://[::ffff:0:7f00:1]/a.wav",
        "http://0x7f.1/a.wav",
        "http://localhost./a.wav",
    ]
    script = tmp_path / "in_namespace.py"
    script.write_text(_IN_NAMESPACE)
    tests = Path(__file__).resolve().parents[1]
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, str(script), *urls]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
        )
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if result.returncode != 0 and "unshare" in result.stderr and "Operation not permitted" in result.stderr:
        pytest.skip("creating a network namespace is not permitted here")
    assert result.returncode == 0, result.stderr[-3000:]
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    assert messages["http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"] == (
        "audio_url refused: 64:ff9b::a9fe:a9fe is a NAT64 address of 169.254.169.254, the cloud metadata "
        "service's address, not a public one"
    )
    assert all(message.endswith("not a public one") for message in messages.values()), messages
