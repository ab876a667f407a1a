"""Connection exhaustion: sockets that never finish a request.

`make run`'s server kept every connection that had not finished its request line or headers,
forever, and counted each against uvicorn's `limit_concurrency` (2,000 in uvicorn_config.json):
2,000 such sockets made every other client get 503, with no credentials. One real
`musicsep serve --config uvicorn_config.json` here, as `make run` starts it, with short timeouts
(header 1 s, body idle 1 s) and its open-files soft limit lowered to 1024 before it starts (as
many systems set it), so the tests also see it raised. The slow clients below pace their bytes
with sleeps: that is the behaviour under test, not synchronisation.
"""

from __future__ import annotations

import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server_harness import STARTUP_TIMEOUT_S, free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
HEADER_TIMEOUT_S = 1.0
BODY_IDLE_TIMEOUT_S = 1.0
#: The deadline fires in the last fifth of the timeout (jitter), and a loaded machine is slow.
EARLIEST_CLOSE_S = 0.7
LATEST_CLOSE_S = 5.0


class Server:
    def __init__(self, tmp: Path, model_repo: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        env = {
            **os.environ,
            "MUSICSEP_DATA_DIR": str(tmp / "data"),
            "MUSICSEP_MODEL_REPO": str(model_repo),
            "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
            "MUSICSEP_OFFLINE": "1",
            "MUSICSEP_DEVICE": "cpu",
            "MUSICSEP_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "MUSICSEP_HTTP_BODY_IDLE_TIMEOUT_S": str(BODY_IDLE_TIMEOUT_S),
            "MUSICSEP_HTTP_MAX_HEADER_KB": "16",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "musicsep.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--config",
                str(ROOT / "uvicorn_config.json"),
            ],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard)),
        )
        wait_until(self.ready, STARTUP_TIMEOUT_S, "musicsep serve to answer /health")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def connect(self, sent: bytes = b"") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=LATEST_CLOSE_S)
        if sent:
            sock.sendall(sent)
        return sock


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_repo) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("timeouts"), tiny_model_repo)
    yield running
    stop_process(running.process)


def seconds_until_closed(sock: socket.socket, started: float) -> tuple[float, bytes]:
    """Reads until the server closes the connection (bounded by the socket timeout)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {LATEST_CLOSE_S} s")
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return time.monotonic() - started, received


def whole_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, however the server split it into segments."""

    def more() -> bytes:
        if not (chunk := sock.recv(65536)):  # bounded by the socket's timeout
            pytest.fail("the server closed the connection in the middle of a response")
        return chunk

    received = b""
    while b"\r\n\r\n" not in received:
        received += more()
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += more()
    assert len(body) == length, "more than one response"
    return received


def health_ok(server: Server) -> bool:
    with httpx.Client(timeout=10) as client:  # a fresh connection each time
        return client.get(f"{server.url}/health").status_code == 200


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit_at_startup(server):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f"open files limit: {hard}" in server.log.read_text()


def test_idle_sockets_are_closed_after_the_header_timeout_while_real_clients_are_served(server):
    started = time.monotonic()
    idle = [server.connect(b"GET /hea" if n % 2 else b"") for n in range(300)]
    assert all(health_ok(server) for _ in range(20))  # served while the 300 are open
    closes = [seconds_until_closed(sock, started) for sock in idle]
    assert all(EARLIEST_CLOSE_S <= after <= LATEST_CLOSE_S for after, _ in closes), sorted(a for a, _ in closes)
    assert all(reply.startswith(b"HTTP/1.1 408 ") for _, reply in closes)


def test_two_thousand_idle_sockets_do_not_turn_real_clients_away(server):
    """The finding itself: with 2,000 idle sockets every other client used to get 503. (More
    than the 1024 descriptors the server started with: they had to be raised too.)"""
    idle = [server.connect() for _ in range(2100)]
    try:
        assert all(health_ok(server) for _ in range(20))
    finally:
        for sock in idle:
            sock.close()


def test_a_request_line_sent_a_byte_at_a_time_gets_no_longer_than_the_header_timeout(server):
    sock = server.connect()
    started = time.monotonic()
    for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
        sock.sendall(bytes([byte]))
        # One byte every 0.1 s, until the server has answered (or for LATEST_CLOSE_S at most).
        if select.select([sock], [], [], 0.1)[0] or time.monotonic() - started > LATEST_CLOSE_S:
            break
    after, reply = seconds_until_closed(sock, started)
    assert EARLIEST_CLOSE_S <= after <= HEADER_TIMEOUT_S + 1.0
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(server):
    sock = server.connect(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert whole_response(sock).startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    sock.sendall(b"GET /hea")
    after, reply = seconds_until_closed(sock, started)
    assert EARLIEST_CLOSE_S <= after <= LATEST_CLOSE_S  # uvicorn's keep-alive (5 s) no longer applies
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_an_upload_that_stops_sending_is_abandoned_after_the_body_idle_timeout(server):
    head = (
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    sock = server.connect(head + b"--b\r\n" + b"x" * 1000)
    after, _ = seconds_until_closed(sock, time.monotonic())
    assert EARLIEST_CLOSE_S <= after <= LATEST_CLOSE_S
    assert health_ok(server)


def test_a_slow_but_steady_upload_is_not_cut_off(server, make_clip):
    """Gaps shorter than the body idle timeout, a whole upload much longer than it."""
    audio = make_clip(seconds=1.0).read_bytes()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="analyze"\r\n\r\nfalse\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + audio + b"\r\n--b--\r\n"
    )
    head = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = server.connect(head)
    started = time.monotonic()
    pieces = 8
    for index in range(pieces):
        sock.sendall(body[index * len(body) // pieces : (index + 1) * len(body) // pieces])
        time.sleep(BODY_IDLE_TIMEOUT_S / 2)
    _, reply = seconds_until_closed(sock, started)
    assert time.monotonic() - started > 3 * BODY_IDLE_TIMEOUT_S
    assert reply.startswith(b"HTTP/1.1 202 "), reply[:200]


def test_headers_over_the_size_cap_answer_431(server):
    sock = server.connect(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000)  # cap: 16 KiB
    _, reply = seconds_until_closed(sock, time.monotonic())
    assert reply.startswith(b"HTTP/1.1 431 ")
