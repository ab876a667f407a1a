"""10,000 connect/disconnect cycles on an event stream leak nothing:
the server's file descriptors and asyncio tasks must come back to baseline ±5, its RSS grow by
less than 20 MB.

A real `musicsep serve` subprocess on 127.0.0.1 follows one job that stays open for the whole
run: an `audio_url` job whose URL is a local socket that accepts connections and never answers,
so the job waits in its download (no CPU spent separating) and its stream never ends by itself.
Each cycle opens a new TCP connection, sends `GET …/events`, reads until the first event has
come (the replay), and leaves: half the cycles close the socket politely, half abort it. The
server is measured from outside: fds from /proc/PID/fd, RSS and threads from /proc/PID/status,
asyncio tasks and open streams from its /metrics (`musicsep_event_loop_tasks`,
`musicsep_event_streams`). Baseline after a warm-up of 200 cycles (first-use allocations and
lazy imports are not a leak); "after" once the server reports no open stream.

    python bench/stream_churn.py [--cycles 10000] [--concurrency 8] [--time-cap-s 600] [--json]
                                 [--redis-url redis://127.0.0.1:6379/13]

With `--redis-url` the server runs scale-out (MUSICSEP_QUEUE=celery, no worker: the job stays
queued) and every stream holds its own Redis connection, which must be closed when the client
leaves; keys go under a fresh prefix, deleted afterwards.

Bounded by the cycle count and a time cap. Exit status 1 when a bound is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402
from _serve import ServeProcess  # noqa: E402

WARMUP_CYCLES = 200
FD_TASK_TOLERANCE = 5
RSS_GROWTH_LIMIT_MB = 20.0


class Server(ServeProcess):
    """`musicsep serve` with the DSP model (no weights), loopback audio_url allowed (bench only)."""

    def __init__(self, data_dir: Path, log: Path, extra_env: dict[str, str]) -> None:
        super().__init__(
            data_dir,
            {
                "MUSICSEP_ALLOW_LOOPBACK_URLS": "1",
                "MUSICSEP_URL_TIMEOUT_S": "86400",
                "OMP_NUM_THREADS": "1",
                **extra_env,
            },
            log=log,
        )

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))

    def snapshot(self) -> dict[str, float]:
        return {
            "fds": self.fd_count(),
            "tasks": self.metric("musicsep_event_loop_tasks"),
            "open_streams": self.metric("musicsep_event_streams"),
            "threads": self.threads(),
            "rss_mb": self.rss_mb(),
        }

    def settle(self, timeout_s: float = 30.0) -> None:
        """Bounded wait until the server has seen every client go (no open stream)."""
        deadline = time.monotonic() + timeout_s
        while self.metric("musicsep_event_streams") > 0:
            if time.monotonic() > deadline:
                raise SystemExit("streams still open 30 s after the last client left")
            time.sleep(0.1)


async def cycle(port: int, path: str, abort: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        received = b""
        while b"event:" not in received:
            chunk = await reader.read(4096)
            if not chunk:
                raise ConnectionError(f"the server closed the stream: {received[:200]!r}")
            received += chunk
        if not received.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"not a stream: {received[:200]!r}")
    finally:
        if abort:
            writer.transport.abort()
        else:
            writer.close()
        await writer.wait_closed()


async def churn(port: int, path: str, cycles: int, concurrency: int, deadline: float) -> int:
    """Run `cycles` cycles, `concurrency` at a time; returns how many ran before the deadline."""
    done = 0

    async def client(index: int) -> None:
        nonlocal done
        while done < cycles and time.monotonic() < deadline:
            done += 1
            await cycle(port, path, abort=(done + index) % 2 == 0)

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return done


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-cap-s", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--redis-url", help="run scale-out on this Redis (a database nothing else uses)")
    args = parser.parse_args()
    prefix = f"musicsep-churn:{os.getpid()}:{time.time_ns()}:"
    extra_env = (
        {}
        if not args.redis_url
        else {
            "MUSICSEP_QUEUE": "celery",
            "MUSICSEP_REDIS_URL": args.redis_url,
            "MUSICSEP_REDIS_PREFIX": prefix,
            "MUSICSEP_SIGNING_KEY": "stream-churn-bench-signing-key-0123456789",
        }
    )
    started = time.monotonic()
    deadline = started + args.time_cap_s
    with tempfile.TemporaryDirectory() as tmp:
        # Accepts TCP connections (the kernel's backlog) and never answers: the job's download waits.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        server = Server(Path(tmp) / "data", Path(tmp) / "server.log", extra_env)
        try:
            reply = httpx.post(
                f"{server.url}/api/v1/jobs",
                timeout=30,
                json={"audio_url": f"http://127.0.0.1:{silent.getsockname()[1]}/song.wav", "analyze": False},
            )
            reply.raise_for_status()
            path = reply.json()["events_url"]
            asyncio.run(churn(server.port, path, WARMUP_CYCLES, args.concurrency, deadline))
            server.settle()
            baseline = server.snapshot()
            churn_started = time.monotonic()
            cycles = asyncio.run(churn(server.port, path, args.cycles, args.concurrency, deadline))
            churn_s = time.monotonic() - churn_started
            server.settle()
            after = server.snapshot()
            job_status = httpx.get(f"{server.url}/api/v1/jobs/{reply.json()['job_id']}", timeout=10).json()["status"]
        finally:
            server.stop()
            silent.close()
            if args.redis_url:
                _delete_keys(args.redis_url, prefix)
    delta = {key: round(after[key] - baseline[key], 2) for key in baseline}
    ok = (
        abs(delta["fds"]) <= FD_TASK_TOLERANCE
        and abs(delta["tasks"]) <= FD_TASK_TOLERANCE
        and delta["rss_mb"] < RSS_GROWTH_LIMIT_MB
        and cycles == args.cycles
    )
    result = {
        "cpu": cpu_model(),
        "mode": "scale-out (Redis)" if args.redis_url else "embedded",
        "cycles": cycles,
        "asked": args.cycles,
        "concurrency": args.concurrency,
        "churn_s": round(churn_s, 2),
        "cycles_per_s": round(cycles / churn_s, 1),
        "job_status": job_status,
        "baseline": baseline,
        "after": after,
        "delta": delta,
        "ok": ok,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"CPU: {result['cpu']}; {result['mode']}")
        print(
            f"{cycles} of {args.cycles} cycles, {args.concurrency} at a time, in {churn_s:.1f} s "
            f"({result['cycles_per_s']}/s); the followed job stayed {job_status}"
        )
        for key in baseline:
            print(f"  {key:>12}: baseline {baseline[key]:10.2f}   after {after[key]:10.2f}   delta {delta[key]:+.2f}")
        print(
            f"bounds: fds and tasks ±{FD_TASK_TOLERANCE}, RSS growth < {RSS_GROWTH_LIMIT_MB:g} MB -> "
            f"{'held' if ok else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
