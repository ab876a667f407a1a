"""How a live reader's stream ends when the job does not complete (issue 16, must-be-true 5), and
what a reader that stops reading costs (must-be-true 4, second half).

The real pipeline and tiny model run; only the live spool is wrapped (test only) so that the
engine holds after segment 0 until the test lets it go: the job is then certainly running, with
segment 0 readable and later ones not, when the test cancels it or it fails. Nothing waits on the
clock: the gate is a threading.Event the engine's thread waits on (bounded), and every request has
its own timeout.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest
import soundfile as sf

from conftest import synth_music
from musicsep.service.live import SEGMENT_FRAMES, LiveSpool
from musicsep.service.pipeline import run_pipeline
from server_harness import base_settings, start_server, stream_events

GATE_S = 60.0


class Gate:
    """Holds the engine after its first full segment until `open()`; `fail_after_first`: the
    second segment's write hits a full disk instead (ENOSPC from the spool's store)."""

    def __init__(self, *, fail_after_first: bool = False) -> None:
        self.held = threading.Event()
        self.go = threading.Event()
        self.fail_after_first = fail_after_first
        self.store: Any = None

    def open(self) -> None:
        self.go.set()


class _FullDisk:
    """The service's own LiveAudio, except that a segment after the first finds the disk full."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def put_segment(self, job_id: str, stem: str, index: int, data: bytes) -> None:
        if index >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._store.put_segment(job_id, stem, index, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _HeldSpool:
    def __init__(self, spool: LiveSpool, gate: Gate) -> None:
        self._spool, self._gate, self._frames = spool, gate, 0

    def begin(self, *args: Any) -> None:
        self._spool.begin(*args)

    def write(self, blocks: Any) -> None:
        self._spool.write(blocks)
        before, self._frames = self._frames, self._frames + next(iter(blocks.values())).shape[-1]
        if before < SEGMENT_FRAMES <= self._frames:
            self._gate.held.set()
            assert self._gate.go.wait(GATE_S), "the test never opened the gate"

    def end(self) -> None:
        self._spool.end()


def gated(gate: Gate):
    def pipeline(spec, input_path, stems_dir, *, options, **rest: Any):
        job_id = input_path.parent.name
        store = _FullDisk(gate.store) if gate.fail_after_first else gate.store

        def live(level: str, announce: Any) -> _HeldSpool:
            return _HeldSpool(LiveSpool(store, job_id, level, announce), gate)

        return run_pipeline(spec, input_path, stems_dir, options=replace(options, live=live), **rest)

    return pipeline


@pytest.fixture
def held_job(tmp_path, tiny_model_repo):
    """Start a server with the gated pipeline; `start(gate)` → (server, job urls) once the engine
    holds after segment 0."""
    clip = tmp_path / "song.wav"
    sf.write(str(clip), synth_music(6.0, seed=7).T, 44100)
    servers = []

    def start(gate: Gate, **settings: Any):
        server = start_server(base_settings(tmp_path / "data", tiny_model_repo, **settings), gated(gate))
        servers.append(server)
        gate.store = server.service.artifacts.live
        with clip.open("rb") as handle:
            accepted = httpx.post(
                f"{server.url}/api/v1/jobs",
                files={"file": ("song.wav", handle)},
                data={"analyze": "false", "format": "float32", "clip": "none"},
                timeout=60,
            ).json()
        assert gate.held.wait(GATE_S), "the engine never reached the end of segment 0"
        return server, accepted

    yield start
    for server in servers:
        server.stop()


def _segment(server, job_id: str, index: int, wait: float) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/jobs/{job_id}/stems/vocals/live/{index}?wait={wait}", timeout=wait + 30)


def test_a_waiting_reader_of_a_cancelled_job_ends_at_once_with_410_and_the_reason(held_job):
    gate = Gate()
    server, accepted = held_job(gate)
    job_id = accepted["job_id"]
    assert _segment(server, job_id, 0, wait=0).status_code == 200, "segment 0 is readable while the job runs"
    early = _segment(server, job_id, 1, wait=0)
    assert early.status_code == 425 and early.headers["retry-after"] == "1"
    assert early.json()["error"]["code"] == "not_ready"
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(_segment, server, job_id, 2, 30)
        cancelled = httpx.post(f"{server.url}/api/v1/jobs/{job_id}/cancel", timeout=10)
        assert cancelled.status_code == 202
        gate.open()  # the engine sees the cancel flag at its next chunk
        reply = waiting.result(timeout=60)
        took = time.monotonic() - started
    assert reply.status_code == 410, reply.text
    error = reply.json()["error"]
    assert error["code"] == "job_cancelled" and "cancelled by request" in error["message"]
    assert took < 25, f"the waiting reader was answered when the job ended, not at its timeout ({took:.1f} s)"
    assert _segment(server, job_id, 0, wait=0).status_code == 200, "what was spooled stays for the grace period"
    info = httpx.get(f"{server.url}/api/v1/jobs/{job_id}/live", timeout=10).json()
    assert info["state"] == "cancelled" and info["done"] is True


def test_a_reader_of_a_job_that_fails_on_a_full_disk_gets_410_with_the_failure(held_job):
    gate = Gate(fail_after_first=True)
    server, accepted = held_job(gate)
    job_id = accepted["job_id"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_segment, server, job_id, 1, 30)
        gate.open()
        reply = waiting.result(timeout=60)
    _, events = stream_events(server.url + accepted["events_url"])
    assert events[-1][1] == "failed" and events[-1][2]["code"] == "storage_full", "the live spool's ENOSPC is typed"
    assert reply.status_code == 410, reply.text
    error = reply.json()["error"]
    assert error["code"] == "job_failed" and "storage_full" in error["message"]


def test_readers_that_stop_reading_neither_block_the_job_nor_hold_more_than_their_segment(held_job):
    """Eight readers ask for segment 0 and never read the answer: the job still runs to the end
    (the spool does not wait for readers), and the server holds at most their segments."""
    import psutil

    gate = Gate()
    server, accepted = held_job(gate)
    job_id = accepted["job_id"]
    rss_before = psutil.Process().memory_info().rss
    stalled = []
    request = f"GET /api/v1/jobs/{job_id}/stems/vocals/live/0 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    port = int(server.url.rsplit(":", 1)[1])
    for _ in range(8):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request)
        stalled.append(sock)
    try:
        gate.open()
        _, events = stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed", "stalled readers did not stop the job"
        grown = psutil.Process().memory_info().rss - rss_before
        one_segment = SEGMENT_FRAMES * 2 * 4
        assert grown < 8 * one_segment + 64 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB with 8 stalled readers"
    finally:
        for sock in stalled:
            sock.close()
