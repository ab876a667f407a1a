"""A small HTTP server on 127.0.0.1 standing in for the sites a job's URLs point at.

Paths: `/audio` (bytes set by the test), `/redirect?to=URL` (302), `/big` (a body larger than the
cap, with no Content-Length), `/status/N`. Every request is recorded (path, headers) so tests can
see what reached the server. For webhook tests `responses` is a queue of statuses to answer POSTs
with, and each POST body and header set is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Target:
    url: str
    audio: bytes = b""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    responses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_target() -> Iterator[Target]:
    target = Target(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with target.lock:
                target.requests.append((self.path, dict(self.headers)))
            path = urlsplit(self.path)
            if path.path == "/audio":
                self._reply(200, target.audio)
            elif path.path == "/redirect":
                self._reply(302, headers={"Location": parse_qs(path.query)["to"][0]})
            elif path.path == "/big":
                self.send_response(200)
                self.end_headers()
                for _ in range(64):
                    self.wfile.write(b"x" * 65536)
            elif path.path.startswith("/status/"):
                self._reply(int(path.path.rsplit("/", 1)[1]))
            else:
                self._reply(404)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with target.lock:
                target.posts.append((dict(self.headers), body))
                status = target.responses.pop(0) if target.responses else 200
            self._reply(status)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    target.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


#: Longest a stalling target holds a request, should the test using it fail before releasing it.
STALL_LIMIT_S = 60.0


@contextmanager
def stalling_target() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """An HTTP server on 127.0.0.1 that holds each GET until released (bounded), then answers 404.

    A URL job fetching from it keeps its run slot busy, with no model running, for as long as the
    test needs: the deterministic way to hold a slot through public behaviour. Yields the base
    URL, an event set when a request has arrived, and the event that releases them.
    """
    arrived, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            arrived.set()
            release.wait(STALL_LIMIT_S)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrived, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
