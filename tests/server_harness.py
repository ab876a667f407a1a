"""A real uvicorn on 127.0.0.1 for the server tests: in-process (a thread) or as a subprocess.

Loaded by the conftest files of tests/api, tests/clients, tests/service and tests/cli (pytest
fixtures cannot be shared between sibling folders otherwise without touching the root conftest).
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import uvicorn

from musicsep.api.http_protocol import protocol_for
from musicsep.composition import create_app
from musicsep.config import Settings

STARTUP_TIMEOUT_S = 60.0
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Bounded wait for a condition another thread or process makes true (not a sleep-as-sync)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def service(self) -> Any:
        return self.app.state.service

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(settings: Settings, pipeline: Any = None) -> LiveServer:
    """`pipeline` replaces the real one (e.g. tests/service/fake_pipeline.py's stepped fake)."""
    app = create_app(settings, pipeline=pipeline)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The HTTP protocol `musicsep serve` uses (header and body timeouts), so every test runs on it.
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=5,
        http=protocol_for(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), STARTUP_TIMEOUT_S, "uvicorn to start")
    if not server.started:
        raise RuntimeError("the server did not start")
    return LiveServer(f"http://127.0.0.1:{port}", settings, app, server, thread)


def base_settings(data_dir: Path, model_repo: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "model_repo": model_repo,
        "default_model": "tiny_htdemucs",
        "offline": True,
        "device": "cpu",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def live_server(tmp_path, tiny_model_repo) -> Iterator[Callable[..., LiveServer]]:
    """Factory: `live_server(**settings)` starts a server on a fresh data dir (or the one given);
    `live_server(pipeline=fake, ...)` runs jobs through a stand-in pipeline instead of the model."""
    started: list[LiveServer] = []

    def _start(pipeline: Any = None, **overrides: Any) -> LiveServer:
        overrides.setdefault("data_dir", tmp_path / "data")
        data_dir = overrides.pop("data_dir")
        server = start_server(base_settings(data_dir, tiny_model_repo, **overrides), pipeline)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@dataclass
class ServerProcess:
    """`musicsep serve` in a subprocess, for the tests that kill -9 it."""

    url: str
    process: subprocess.Popen
    log: Path
    env: dict[str, str] = field(repr=False)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within `grace_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_server(
    env_overrides: dict[str, str], log: Path, port: int | None = None, args: tuple[str, ...] = ()
) -> ServerProcess:
    """`musicsep serve *args` on 127.0.0.1 (`args` e.g. ("--config", "uvicorn_config.json"))."""
    port = port or free_port()
    env = {
        **os.environ,
        **env_overrides,
        "MUSICSEP_PORT": str(port),
        "MUSICSEP_HOST": "127.0.0.1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "musicsep.cli", "serve", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, STARTUP_TIMEOUT_S, "the server process to answer /health")
    return ServerProcess(url, process, log, env)


def stream_events(
    url: str,
    *,
    last_event_id: int = 0,
    stop_after: int | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> tuple[int, list[tuple[int, str, dict]]]:
    """Open an event stream with httpx and parse it with the clients' parser.

    Returns (status, [(id, type, data)]); stops at the terminal event, or after `stop_after`
    events (closing the connection: a disconnect at that point).
    """
    import json

    from musicsep.clients.sse import SSEParser

    sent = dict(headers or {})
    if last_event_id:
        sent["Last-Event-ID"] = str(last_event_id)
    parser = SSEParser()
    events: list[tuple[int, str, dict]] = []
    with httpx.stream("GET", url, headers=sent, timeout=timeout_s) as response:
        if response.status_code != 200:
            return response.status_code, events
        for text in response.iter_text():
            for message in parser.feed(text):
                data = json.loads(message.data)
                events.append((int(message.id or 0), message.event, data))
                if message.event in TERMINAL or len(events) == stop_after:
                    return response.status_code, events
    return response.status_code, events


@dataclass
class ResumingWatcher:
    """An SSE reader that behaves as EventSource does: after each connection ends it waits the
    server's `retry:` and reconnects with the last id it saw, until the terminal event.

    Records the (id, type) of every event, the last 300 characters of each connection that
    ended without the terminal event (where the server's closing notice stands), the status of
    every answer that was not 200 (retried after 0.2 s), and how many connections failed (no
    server on the port, e.g. between two server processes; retried after 0.1 s).
    """

    url: str
    events: list[tuple[int, str]] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)
    refusals: list[int] = field(default_factory=list)
    unreachable: int = 0
    live: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, session: aiohttp.ClientSession, deadline: float) -> None:
        from musicsep.clients.sse import SSEParser

        while time.monotonic() < deadline:
            headers = {"Last-Event-ID": str(self.events[-1][0])} if self.events else {}
            parser, tail = SSEParser(), ""
            decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                async with session.get(self.url, headers=headers) as response:
                    if response.status != 200:
                        self.refusals.append(response.status)
                        await asyncio.sleep(0.2)
                        continue
                    async for chunk in response.content.iter_any():
                        text = decoder.decode(chunk)
                        tail = (tail + text)[-300:]
                        for message in parser.feed(text):
                            self.events.append((int(message.id), message.event))
                            self.live.set()
                            if message.event in TERMINAL:
                                return
                self.endings.append(tail)
            except aiohttp.ClientConnectionError:
                self.unreachable += 1
                await asyncio.sleep(0.1)
                continue
            await asyncio.sleep((parser.retry_ms or 100) / 1000)
        raise TimeoutError(f"{self.url}: no terminal event in time; got {self.events}")
