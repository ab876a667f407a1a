"""Idle sockets (connections that never finish a request) must not starve real clients.

A real `musicsep serve --config uvicorn_config.json` subprocess on 127.0.0.1. Two phases in one
run, the same real clients in both:
1. baseline: 50 clients, each doing sequential `GET /health` on fresh connections, plus a few
   event-stream opens (`GET /api/v1/jobs/{id}/events` of a finished job, read to its terminal
   event);
2. the same while 2,000 idle sockets are held open (half connected and silent, half having sent
   half a request line); each one the server closes is opened again at once, so the attacker
   keeps 2,000 up all through the phase.
Prints p50/p99/max of /health in both phases and their ratio, how many real clients were served
(every one must be), how many idle sockets the server closed and after how long, the server's
RSS and CPU time, and the CPU model. Exits 1 when a real client was not served or the p99 under
idle sockets is 200 ms or more.

    .venv/bin/python bench/idle_sockets.py [--idle 2000] [--clients 50] [--requests 20] [--interval-ms 600]

Raw asyncio sockets on the client side: the measurement is the server's, not an HTTP library's.
The model is `dsp` (no weights needed); this process imports no musicsep code.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402
from _serve import ServeProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 240.0
REQUEST_TIMEOUT_S = 10.0
P99_LIMIT_MS = 200.0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def write_clip(path: Path, seconds: float = 2.0, rate: int = 44100) -> None:
    frames = bytearray()
    for i in range(int(seconds * rate)):
        sample = int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
        frames += sample * 2
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


def finished_job(url: str, clip: Path) -> str:
    with clip.open("rb") as audio:
        reply = httpx.post(
            f"{url}/api/v1/jobs",
            files={"file": ("clip.wav", audio, "audio/wav")},
            data={"model": "dsp", "analyze": "false", "stems": "vocals"},
            timeout=60,
        )
    reply.raise_for_status()
    job_id = reply.json()["job_id"]
    with httpx.stream("GET", f"{url}/api/v1/jobs/{job_id}/events", timeout=120) as events:
        for line in events.iter_lines():
            if line.startswith("event: ") and line[7:] in ("completed", "failed", "cancelled"):
                if line[7:] != "completed":
                    raise SystemExit(f"the bench's job ended with {line}")
                return job_id
    raise SystemExit("the bench's job stream ended without a terminal event")


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    sse_served: int = 0
    sse_first_byte_ms: list[float] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


async def get_once(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


async def health_client(port: int, requests: int, interval_s: float, offset_s: float, results: Results) -> None:
    """`requests` GETs, one every `interval_s` from `offset_s` on (a paced client; 0: back to back)."""
    first = time.perf_counter() + offset_s
    for index in range(requests):
        await asyncio.sleep(max(0.0, first + index * interval_s - time.perf_counter()))
        started = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(get_once(port, "/health"), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as exc:
            results.fail(type(exc).__name__)
            continue
        if status != 200:
            results.fail(f"HTTP {status}")
            continue
        results.latencies_ms.append(1000 * (time.perf_counter() - started))


async def sse_client(port: int, job_id: str, results: Results) -> None:
    async def read_stream() -> None:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            first = await reader.readline()
            results.sse_first_byte_ms.append(1000 * (time.perf_counter() - started))
            if not first.startswith(b"HTTP/1.1 200"):
                results.fail(f"SSE {first[9:12].decode(errors='replace')}")
                return
            while line := await reader.readline():
                if line.strip() == b"event: completed":
                    results.sse_served += 1
                    return
            results.fail("SSE ended early")
        finally:
            writer.close()

    try:
        await asyncio.wait_for(read_stream(), REQUEST_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as exc:
        results.fail(f"SSE {type(exc).__name__}")


async def real_clients(port: int, args: argparse.Namespace, job_id: str) -> Results:
    results = Results()
    interval_s = args.interval_ms / 1000
    await asyncio.gather(
        *(
            health_client(port, args.requests, interval_s, index * interval_s / args.clients, results)
            for index in range(args.clients)
        ),
        *(sse_client(port, job_id, results) for _ in range(args.sse)),
    )
    return results


@dataclass
class Attacker:
    """Holds `count` idle sockets; each one the server closes is opened again."""

    port: int
    count: int
    opened: int = 0
    up: int = 0
    closed_by_server: int = 0
    held_s: list[float] = field(default_factory=list)
    refused: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, index: int) -> None:
        partial = index % 2 == 1  # half send half a request line, half send nothing
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.05)
                continue
            self.opened += 1
            self.up += 1
            began = time.monotonic()
            try:
                if partial:
                    writer.write(b"GET /hea")
                stop = asyncio.ensure_future(self.stop.wait())
                eof = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({stop, eof}, return_when=asyncio.FIRST_COMPLETED)
                if eof in done:
                    self.closed_by_server += 1
                    self.held_s.append(time.monotonic() - began)
                for task in (stop, eof):
                    task.cancel()
            except OSError:
                self.closed_by_server += 1
            finally:
                self.up -= 1
                writer.close()

    async def wait_all_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.up < self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def report(self) -> dict:
        return {
            "up": self.up,
            "opened": self.opened,
            "refused": self.refused,
            "closed_by_server": self.closed_by_server,
            "held_s": self.held_s,
        }


def attacker_process(port: int, count: int, conn: Connection) -> None:
    """The attacker in a process of its own: reconnecting 2,000 sockets at once would otherwise
    stall the measuring clients' event loop and be counted as the server's latency. Commands on
    `conn`: "status" (answers the report), "stop" (answers the final report)."""

    os.nice(10)  # its own CPU time must not show up as the server's latency either

    async def attack() -> None:
        attacker = Attacker(port, count)
        holders = []
        for start in range(0, count, 200):  # in batches: the listen backlog is finite
            holders += [asyncio.ensure_future(attacker.hold(i)) for i in range(start, min(count, start + 200))]
            await asyncio.sleep(0.05)
        await attacker.wait_all_up(60)
        conn.send(attacker.report())
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, conn.recv) != "stop":
            conn.send(attacker.report())
        attacker.stop.set()
        await asyncio.wait_for(asyncio.gather(*holders, return_exceptions=True), 30)
        conn.send(attacker.report())

    asyncio.run(attack())


async def ask(conn: Connection, command: str | None = None) -> dict:
    if command is not None:
        conn.send(command)
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def summary(results: Results) -> tuple[float, float, float]:
    values = sorted(results.latencies_ms)
    if not values:
        return math.nan, math.nan, math.nan
    p99 = values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]
    return statistics.median(values), p99, values[-1]


async def measure(server: ServeProcess, args: argparse.Namespace, job_id: str) -> bool:
    total = args.clients * args.requests
    base = await real_clients(server.port, args, job_id)
    rss_before, cpu_before = server.rss_mb(), server.cpu_s()

    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(target=attacker_process, args=(server.port, args.idle, theirs))
    child.start()
    try:
        up_at_start = (await asyncio.wait_for(ask(ours), 90))["up"]
        attacked_started = time.monotonic()
        attacked = await real_clients(server.port, args, job_id)
        attack_s = time.monotonic() - attacked_started
        up_at_end = (await ask(ours, "status"))["up"]
        if args.hold_s > attack_s:  # keep holding to see the server's header timeout close them
            await asyncio.sleep(args.hold_s - attack_s)
        rss_attacked, cpu_attacked = server.rss_mb(), server.cpu_s()
        final = await asyncio.wait_for(ask(ours, "stop"), 60)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()

    b50, b99, bmax = summary(base)
    a50, a99, amax = summary(attacked)
    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.2f}")
    print(f"server: musicsep serve --config {args.config.name}; pid {server.process.pid}")
    print(
        f"real clients: {args.clients} x {args.requests} GET /health on fresh connections, one every "
        f"{args.interval_ms:g} ms each (starts staggered), + {args.sse} event-stream opens, per phase"
    )
    print(
        f"baseline:      {len(base.latencies_ms)}/{total} /health served, p50 {b50:.1f} ms, p99 {b99:.1f} ms, "
        f"max {bmax:.1f} ms; SSE {base.sse_served}/{args.sse}; failures {base.failures or 'none'}"
    )
    print(
        f"idle sockets:  {up_at_start} up when the clients started, {up_at_end} at their end "
        f"({final['opened']} opened in all, {final['refused']} connects refused; attacker in its own process)"
    )
    print(
        f"under attack:  {len(attacked.latencies_ms)}/{total} /health served, p50 {a50:.1f} ms, p99 {a99:.1f} ms, "
        f"max {amax:.1f} ms; SSE {attacked.sse_served}/{args.sse}; failures {attacked.failures or 'none'}"
    )
    ratio = a99 / b99 if b99 else math.nan
    print(f"p99 ratio (attack / baseline): {ratio:.2f}")
    held = sorted(final["held_s"])
    if held:
        print(
            f"idle sockets closed by the server: {final['closed_by_server']}, held "
            f"{held[0]:.1f}-{held[-1]:.1f} s (median {statistics.median(held):.1f} s)"
        )
    else:
        print("idle sockets closed by the server: none (they would be held forever)")
    print(
        f"server RSS: {rss_before:.0f} MB before, {rss_attacked:.0f} MB with the idle sockets; "
        f"server CPU during the attack phase: {cpu_attacked - cpu_before:.1f} s over "
        f"{max(attack_s, args.hold_s):.1f} s"
    )
    served = len(attacked.latencies_ms) == total and attacked.sse_served == args.sse and not attacked.failures
    ok = served and a99 < P99_LIMIT_MS
    print(
        f"verdict: {'PASS' if ok else 'FAIL'} (every real client served: {served}; "
        f"p99 under {P99_LIMIT_MS:.0f} ms: {a99 < P99_LIMIT_MS})"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=2000, help="idle sockets held open (default 2000)")
    parser.add_argument("--clients", type=int, default=50, help="real /health clients (default 50)")
    parser.add_argument("--requests", type=int, default=20, help="sequential requests per client (default 20)")
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=600.0,
        help="each client sends one request every this many ms (default 600: a phase lasts "
        "longer than the 10 s header timeout, so the server closes and the attacker reopens "
        "all 2,000 sockets while the clients run); 0 sends back to back",
    )
    parser.add_argument("--sse", type=int, default=5, help="event-stream opens per phase (default 5)")
    parser.add_argument(
        "--hold-s",
        type=float,
        default=15.0,
        help="hold the idle sockets at least this long, to see them closed (default 15)",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "uvicorn_config.json", help="uvicorn options")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra MUSICSEP_* settings for the server (repeat)",
    )
    args = parser.parse_args()
    print(f"file descriptors: soft limit {raise_fd_limit()} in the bench process")
    with tempfile.TemporaryDirectory(prefix="musicsep-idle-") as tmp:
        clip = Path(tmp) / "clip.wav"
        write_clip(clip)
        extra_env = dict(item.split("=", 1) for item in args.env)
        server = ServeProcess(
            Path(tmp) / "data",
            {"OMP_NUM_THREADS": "1", **extra_env},
            args=["--config", str(args.config)],
            log=Path(tmp) / "server.log",
            cwd=ROOT,
        )
        try:
            job_id = finished_job(server.url, clip)
            ok = asyncio.run(asyncio.wait_for(measure(server, args, job_id), DEADLINE_S))
        finally:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
