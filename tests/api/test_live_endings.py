"""How a live reader's stream ends when the job does not complete (issue 16, must-be-true 5), and
what a reader that stops reading costs (must-be-true 4, second half).

The real pipeline and tiny model run; only the live spool is wrapped (test only) so that the
engine holds after segment 0 until the test lets it go: the job is then certainly running, with
segment 0 readable and later ones not, when the test cancels it or it fails. Nothing waits on the
clock: the gate is a threading.Event the engine's thread waits on (bounded), and every request has
its own timeout.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from musicsep.service.live import SEGMENT_FRAMES
from server_harness import stream_events
from service.live_gate import Gate, start_held  # tests/service, on pytest's pythonpath


@pytest.fixture
def held_job(tmp_path, tiny_model_repo):
    """`start(gate)` → (server, POST /jobs's answer) once the engine holds after segment 0."""
    servers = []

    def start(gate: Gate, **settings: Any):
        server, accepted = start_held(tmp_path, tiny_model_repo, gate, **settings)
        servers.append((server, gate))
        return server, accepted

    yield start
    for server, gate in servers:
        gate.open()
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
    again = _segment(server, job_id, 0, wait=0)
    assert again.status_code == 410 and again.json()["error"]["code"] == "job_cancelled", "removed when it ended"
    assert not (server.settings.data_dir / "jobs" / job_id / "live").exists()
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


def _stall(port: int, path: str) -> socket.socket:
    """A reader that sends its request and never reads the answer (a tiny receive window)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def test_readers_that_stop_reading_neither_block_the_job_nor_hold_more_than_their_segment(held_job):
    """Readers that ask for a segment and never read the answer: the job still runs to the end
    (the spool never waits for readers), and each holds at most its one segment on the server."""
    import psutil

    gate = Gate()
    server, accepted = held_job(gate)
    job_id = accepted["job_id"]
    port = int(server.url.rsplit(":", 1)[1])
    path = f"/api/v1/jobs/{job_id}/stems/{{stem}}/live/{{index}}"
    stalled = [_stall(port, path.format(stem="vocals", index=0)) for _ in range(8)]
    try:
        gate.open()
        _, events = stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed", "stalled readers did not stop the job"
        rss_before = psutil.Process().memory_info().rss
        asked = [(stem, index) for stem in ("drums", "bass", "other", "vocals") for index in range(5)]
        stalled += [_stall(port, path.format(stem=stem, index=index)) for stem, index in asked]
        for stem, index in asked:  # answered after the stalled ones on the same event loop
            assert httpx.get(server.url + path.format(stem=stem, index=index), timeout=30).status_code == 200
        grown = psutil.Process().memory_info().rss - rss_before
        one_segment = SEGMENT_FRAMES * 2 * 4
        assert grown < len(asked) * 2 * one_segment + 16 * 2**20, (
            f"RSS grew {grown / 2**20:.1f} MiB with {len(asked)} more stalled readers"
        )
    finally:
        for sock in stalled:
            sock.close()
