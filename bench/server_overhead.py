"""Server overhead, measured against the engine alone in the same run.

1. End-to-end through the server (upload → `completed`, on a `musicsep serve` subprocess) over
   `separate_file` called directly on the same file and model: ratio, target ≤ 1.10.
2. Time to the first SSE byte for 50 concurrent EventSource watchers of a job that is being
   separated, on loopback: p99, target ≤ 100 ms (and /health's p99 in the same run as a baseline).

    python bench/server_overhead.py [--seconds 60] [--runs 3] [--watchers 50] [--model-repo DIR --model NAME]
    python bench/server_overhead.py --skip-e2e      # the first-byte measurements only

The server separates in threads niced to MUSICSEP_WORKER_NICE (default 10); the engine-alone
runs here use the same nice value, so neither side is favoured by the scheduler.

Without --model-repo it builds a small HTDemucs (random weights, Demucs's own classes and file
format) in a temporary folder: the cost per second of audio is what matters here, not quality.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import soundfile as sf


def build_model(folder: Path) -> str:
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    torch.manual_seed(0)
    model = HTDemucs(
        ["drums", "bass", "other", "vocals"],
        channels=16,
        depth=3,
        nfft=2048,
        t_layers=2,
        t_heads=4,
        segment=Fraction(4, 1),
        dconv_comp=4,
    ).eval()
    args, kwargs = model._init_args_kwargs
    package = {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=False),
        "training_args": {},
    }
    save_with_checksum(package, folder / "bench_htdemucs.th")
    return "bench_htdemucs"


def make_song(path: Path, seconds: float, samplerate: int = 44100) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * samplerate)) / samplerate
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 55 * t) * (t % 0.5 < 0.1)
    stereo = np.stack([mix, mix]) + 0.01 * rng.standard_normal((2, t.size))
    sf.write(path, (0.5 * stereo).T.astype(np.float32), samplerate)
    return path


def engine_once(song: Path, out: Path, model: str, loader) -> float:
    """The engine alone, in a thread at the server's job priority (MUSICSEP_WORKER_NICE), so
    other load on the machine weighs on both sides alike."""
    from musicsep.config import Settings
    from musicsep.model.separate import SeparationRequest, separate_file
    from musicsep.service.runner import ThreadRunner

    def separate() -> float:
        started = time.perf_counter()
        separate_file(song, out, SeparationRequest(model=model, device="cpu"), loader=loader)
        return time.perf_counter() - started

    runner = ThreadRunner(1, nice=Settings().worker_nice)
    try:
        return asyncio.run(runner.run("bench", separate))
    finally:
        runner.shutdown()


def server_once(url: str, song: Path, parts: list[tuple[float, float]] | None = None) -> float:
    """Client wall time; `parts` gets (job's own overhead around the engine, transport + queue)."""
    from musicsep.clients import Client

    started = time.perf_counter()
    with Client(url, timeout=600) as client:
        accepted = client.submit(song, analyze=False)
        final = client.wait(accepted["job_id"])
    elapsed = time.perf_counter() - started
    assert final.type == "completed", final.raw
    timings = final.raw["timings"]
    if parts is not None:
        parts.append((timings["total_s"] - timings["engine_total_s"], elapsed - timings["total_s"]))
    return elapsed


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "musicsep.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


async def first_bytes(url: str, watchers: int) -> list[float]:
    """Open `watchers` streams at once; seconds from each request to its first body byte.

    Watchers stay connected until every one has its first byte, as real watchers would: closing
    early would make the server tear streams down while it is still opening the others.
    """
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    everyone_started = asyncio.Event()
    pending = watchers
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one() -> float:
            nonlocal pending
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.content.readany()
                elapsed = time.perf_counter() - started
                pending -= 1
                if pending == 0:
                    everyone_started.set()
                await everyone_started.wait()
                return elapsed

        return list(await asyncio.gather(*(one() for _ in range(watchers))))


def end_to_end(url: str, song: Path, work: Path, model: str, loader, runs: int) -> None:
    """Upload → completed through the server against the engine alone, interleaved runs."""
    engine_once(song, work / "warm", model, loader)  # both sides warm: model loaded, caches hot
    server_once(url, song)
    engine, server, parts = [], [], []
    for run in range(runs):  # interleaved, so drift in machine load hits both alike
        engine.append(engine_once(song, work / f"engine{run}", model, loader))
        server.append(server_once(url, song, parts))
    ratio = statistics.median(server) / statistics.median(engine)
    print(f"song {sf.info(str(song)).duration:.0f} s, model {model}, {runs} runs each (median):")
    print(f"  engine alone        {statistics.median(engine):8.3f} s   {[f'{s:.3f}' for s in engine]}")
    print(f"  through the server  {statistics.median(server):8.3f} s   {[f'{s:.3f}' for s in server]}")
    print(f"  ratio server/engine {ratio:8.3f}   (target <= 1.10) {'OK' if ratio <= 1.10 else 'OVER'}")
    job_extra = statistics.median(p[0] for p in parts)
    transport = statistics.median(p[1] for p in parts)
    print(
        f"  where the server adds time (same runs, median): around the engine call {job_extra:.3f} s, "
        f"upload + queue + event stream {transport:.3f} s "
        f"= {(job_extra + transport) / statistics.median(engine):.1%} of the engine time"
    )


def p99(samples: list[float]) -> float:
    return float(np.percentile(samples, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description="musicsep server overhead vs the engine alone")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test song")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of concurrent watchers")
    parser.add_argument("--model-repo", type=Path)
    parser.add_argument("--model")
    parser.add_argument("--skip-e2e", action="store_true", help="only the first-byte measurements")
    args = parser.parse_args()

    from musicsep.model.loading import ModelLoader

    work = Path(tempfile.mkdtemp(prefix="musicsep-bench-"))
    repo = args.model_repo or work / "models"
    repo.mkdir(exist_ok=True)
    model = args.model or build_model(repo)
    song = make_song(work / "song.wav", args.seconds)
    env = {
        "MUSICSEP_DATA_DIR": str(work / "data"),
        "MUSICSEP_MODEL_REPO": str(repo),
        "MUSICSEP_DEFAULT_MODEL": model,
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "MUSICSEP_PRELOAD": f'["{model}"]',
        "MUSICSEP_QUEUE_SIZE": "64",
    }
    loader = ModelLoader(repo=repo, offline=True)
    process, url = start_server(env)
    try:
        if not args.skip_e2e:
            end_to_end(url, song, work, model, loader, args.runs)
        for label, running in (("a finished job, idle server", False), ("during a separation", True)):
            stream, health = watch(url, song, args.watchers, args.rounds, running)
            print(f"first SSE byte, {args.watchers} concurrent watchers x {args.rounds} rounds, {label}:")
            print(
                f"  p50 {1000 * statistics.median(stream):7.1f} ms   p99 {1000 * p99(stream):7.1f} ms   "
                f"(target p99 <= 100 ms) {'OK' if p99(stream) <= 0.100 else 'OVER'}"
            )
            print(
                f"  baseline GET /health, same load: p99 {1000 * p99(health):7.1f} ms   "
                f"ratio {p99(stream) / p99(health):5.2f}"
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
    return 0


def watch(url: str, song: Path, watchers: int, rounds: int, running: bool) -> tuple[list[float], list[float]]:
    """First-byte times of event streams and of /health, for a finished job or a running one."""
    from musicsep.clients import Client

    with Client(url) as client:
        job_id = client.submit(song, analyze=False)["job_id"]
        if running:
            next(event for event in client.events(job_id) if event.type == "progress")
        else:
            client.wait(job_id)
    events_url = f"{url}/api/v1/jobs/{job_id}/events"
    # This process imported torch and Demucs to build the model: a full collection of its own
    # heap stops these watchers for ~100 ms, which would be measured as server latency.
    gc.freeze()
    stream: list[float] = []
    health: list[float] = []
    asyncio.run(first_bytes(events_url, watchers))  # warm-up round, not counted (lazy imports, caches)
    asyncio.run(first_bytes(f"{url}/health", watchers))
    for _ in range(rounds):
        stream += asyncio.run(first_bytes(events_url, watchers))
        health += asyncio.run(first_bytes(f"{url}/health", watchers))
        if os.environ.get("BENCH_VERBOSE"):
            print(
                f"  round: events p99 {1000 * p99(stream[-watchers:]):.1f} ms, "
                f"health p99 {1000 * p99(health[-watchers:]):.1f} ms"
            )
    httpx.delete(f"{url}/api/v1/jobs/{job_id}")
    return stream, health


if __name__ == "__main__":
    sys.exit(main())
