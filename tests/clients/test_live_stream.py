"""`stream_stem` in both clients (issue 16): it follows a running job's frontier segment by
segment, its blocks equal the final float32 stem, it ends at the end of the track, and a
cancelled job raises the server's 410 with the reason instead of hanging."""

from __future__ import annotations

import asyncio
import io
import sys
from array import array
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import soundfile as sf

from musicsep.clients import AsyncClient, Client, LiveBlock, ServerError
from server_harness import stream_events
from service.live_gate import Gate, start_held  # tests/service, on pytest's pythonpath

SEGMENT = 65536
FRAMES = 6 * 44100


def _final(server, accepted, stem: str) -> np.ndarray:
    view = httpx.get(server.url + accepted["status_url"], timeout=10).json()
    reply = httpx.get(server.url + view["stems"][stem]["url"], timeout=30)
    return sf.read(io.BytesIO(reply.content), dtype="float32", always_2d=True)[0]


def test_both_clients_stream_a_running_stem_equal_to_the_final_file(tmp_path, tiny_model_repo):
    gate = Gate()
    server, accepted = start_held(tmp_path, tiny_model_repo, gate)
    try:
        job_id = accepted["job_id"]
        with Client(server.url) as client:
            blocks = client.stream_stem(job_id, "vocals")
            first = next(blocks)  # segment 0 is ready while the engine holds: the job is running
            assert httpx.get(server.url + accepted["status_url"], timeout=10).json()["status"] == "running"
            gate.open()
            sync_blocks = [first, *blocks]

        async def read_all() -> list[LiveBlock]:
            async with AsyncClient(server.url) as client:
                return [block async for block in client.stream_stem(job_id, "vocals")]

        async_blocks = asyncio.run(read_all())
        _, events = stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed"
        final = _final(server, accepted, "vocals")
        for blocks in (sync_blocks, async_blocks):
            assert [b.index for b in blocks] == [0, 1, 2, 3, 4]
            assert [b.frames for b in blocks] == [SEGMENT] * 4 + [FRAMES - 4 * SEGMENT]
            assert all(isinstance(b.samples, array) and b.samples.typecode == "f" for b in blocks)
            assert all((b.channels, b.samplerate, b.level) == (2, 44100, "final") for b in blocks)
            assert np.array_equal(np.concatenate([b.numpy() for b in blocks]), final)
    finally:
        gate.open()
        server.stop()


def test_stream_stem_of_a_cancelled_job_raises_410_with_the_reason(tmp_path, tiny_model_repo):
    gate = Gate()
    server, accepted = start_held(tmp_path, tiny_model_repo, gate)
    try:
        job_id = accepted["job_id"]
        received: list[LiveBlock] = []

        def read() -> BaseException | None:
            with Client(server.url) as client:
                try:
                    for block in client.stream_stem(job_id, "drums"):
                        received.append(block)
                except ServerError as error:
                    return error
            return None

        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(read)
            assert httpx.post(f"{server.url}/api/v1/jobs/{job_id}/cancel", timeout=10).status_code == 202
            gate.open()
            error = reading.result(timeout=90)
        assert isinstance(error, ServerError), "the stream ended with the server's error, not quietly"
        assert error.status == 410 and error.code == "job_cancelled" and "cancelled by request" in error.message
        assert [b.index for b in received] == list(range(len(received))), "what came, came in order"
    finally:
        gate.open()
        server.stop()


def test_the_clients_live_module_needs_no_numpy():
    import subprocess

    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from musicsep.clients.live import parse_float_wav\n"
        "import struct\n"
        "fmt = struct.pack('<HHIIHH', 3, 1, 8000, 32000, 4, 32)\n"
        "body = struct.pack('<2f', 0.5, -0.25)\n"
        "wav = b'RIFF' + struct.pack('<I', 4 + 24 + 8 + len(body)) + b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt"
        " + b'data' + struct.pack('<I', len(body)) + body\n"
        "block = parse_float_wav(wav, 0, 'final')\n"
        "assert list(block.samples) == [0.5, -0.25] and block.frames == 2, block\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
