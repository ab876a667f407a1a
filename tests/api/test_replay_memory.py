"""Replaying a `payload=base64` job's log holds one chunk per reader, not the whole log.

Each reader of `GET …/events` loaded, decoded and re-encoded every stem's base64, and handed it to
its connection in one write: 40 readers that read 1 KB and stalled took the server from 806 MB to
2,017 MB. Now a replay reads the log in pages and long strings in chunks, and a stalled reader
holds one chunk. What a client receives must not change by a byte. (The figure with 40 readers
of a real server: bench/stalled_readers.py.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import tracemalloc

import httpx
from sse_starlette import ServerSentEvent

from musicsep.api.streams import encode
from musicsep.service.events import EventLog
from musicsep.service.sqlite_store import SqliteStore
from scenarios import download_stems, post_job, run_to_end
from server_harness import wait_until

STEMS = ("drums", "bass", "other", "vocals")
#: What a replay hands the connection at a time (service/event_text.CHUNK_BYTES).
CHUNK_BYTES = 64 * 1024


def _wire(event_id: int, type_: str, data: dict) -> bytes:
    """The frame the server has always sent for an event (api/streams.py before the fix)."""
    return ServerSentEvent(
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False), event=type_, id=str(event_id)
    ).encode()


def _base64_job_log(log: EventLog, job: str, stem_bytes: int) -> list[tuple[str, dict]]:
    """What a finished `payload=base64` job leaves in its log; the events as appended."""
    appended: list[tuple[str, dict]] = [
        ("queued", {"position": 0}),
        ("started", {"model": "tiny", "device": "cpu", "stems": list(STEMS)}),
    ]
    appended += [("progress", {"stage": "separating", "percent": n, "chunk": n, "chunks": 40}) for n in range(40)]
    appended += [
        ("stem", {"name": name, "url": f"/stems/{name}", "format": "wav16", "bytes": stem_bytes}) for name in STEMS
    ]
    stems = {
        name: {"data": base64.b64encode(bytes([i]) * stem_bytes).decode(), "format": "wav16", "bytes": stem_bytes}
        for i, name in enumerate(STEMS)
    }
    appended.append(("completed", {"stems": stems, "analysis": {"key": "ré mineur"}, "timings": {"total_s": 1.0}}))
    for type_, payload in appended:
        log.append(job, type_, payload)
    return [(type_, {"event": type_, **payload}) for type_, payload in appended]


def test_replaying_a_base64_job_holds_one_page_and_one_chunk_not_the_log(tmp_path):
    log = EventLog(SqliteStore(tmp_path / "db.sqlite3"))
    appended = _base64_job_log(log, "job", stem_bytes=3_000_000)  # 16 MB of base64 in the log

    async def replay() -> list:
        return [batch async for batch in log.follow("job")]

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        batches = asyncio.run(replay())
        read_peak = tracemalloc.get_traced_memory()[1] - before
        assert read_peak < 1_000_000, f"reading the log for a replay held {read_peak / 1e6:.1f} MB"
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        largest = 0
        for batch in batches:
            for chunk in encode(batch):  # each chunk goes to the client and is dropped
                largest = max(largest, len(chunk))
        encode_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert encode_peak < 4 * CHUNK_BYTES, f"sending the replay held {encode_peak / 1e6:.1f} MB"
    assert largest <= 2 * CHUNK_BYTES
    assert all(len(batch) <= 256 for batch in batches)

    received = b"".join(chunk for batch in batches for chunk in encode(batch))
    expected = b"".join(_wire(n, type_, data) for n, (type_, data) in enumerate(appended, start=1))
    assert received == expected


def _stalled_reader(url: str) -> socket.socket:
    """Opens `url`'s event stream with a tiny receive buffer, reads about 1 KB and stops reading."""
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    sock.settimeout(30)
    sock.connect((host, int(port)))
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    got = b""
    while len(got) < 1024:
        got += sock.recv(1024 - len(got))
    assert got.startswith(b"HTTP/1.1 200")
    return sock


def test_stalled_readers_of_a_base64_job_each_hold_one_chunk_not_the_log(live_server, make_clip):
    # Pings every 20 ms: a replay sent in chunks must never let one land inside a frame.
    server = live_server(sse_ping_s=0.02)
    accepted = post_job(server.url, make_clip(seconds=5.0), payload="base64", analyze=False)  # ~4.7 MB of base64
    events = run_to_end(server.url, accepted)
    assert events[-1][1] == "completed"
    events_url = server.url + accepted["events_url"]

    # Byte for byte what the server always sent, and the stems' data is the stems' files.
    with httpx.stream("GET", events_url, timeout=60) as response:
        received = b"".join(response.iter_raw(4096))  # slowly enough for pings to come in between
    blocks = [block + b"\r\n\r\n" for block in received.split(b"\r\n\r\n")[:-1]]
    assert blocks[0].startswith(b"retry: ")
    frames = [block for block in blocks[1:] if not block.startswith(b": ping")]
    assert frames == [_wire(n, type_, data) for n, type_, data in events]
    files = download_stems(server.url, {data["name"]: data for _, type_, data in events if type_ == "stem"})
    assert {name: base64.b64decode(stem["data"]) for name, stem in events[-1][2]["stems"].items()} == files

    connections = server.server.server_state.connections
    idle = set(connections)
    readers = [_stalled_reader(events_url) for _ in range(8)]
    try:

        def stalled() -> list:
            return [c for c in connections - idle if c.transport.get_write_buffer_size() > 0]

        # Stalled: the server has written all the kernel takes, and the rest waits in its buffer.
        wait_until(lambda: len(stalled()) == len(readers), 30, "the readers' streams to stall")
        held = sorted(c.transport.get_write_buffer_size() for c in stalled())
    finally:
        for sock in readers:
            sock.close()
    assert held[-1] <= 3 * CHUNK_BYTES, f"a stalled reader holds {held[-1] / 1e6:.1f} MB of the server's memory"
