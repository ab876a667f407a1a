"""Peak server memory of a long job with live readers against the same job without (issue 16, 4).

    python bench/live_memory.py                  # a 30-minute track, the weight-free dsp model
    python bench/live_memory.py --minutes 5      # quicker

Two `musicsep serve` processes run side by side in the same run, on the same machine load, each
with one job of the same track: one with no reader, one with two live readers (vocals and drums,
each following the frontier segment by segment with `?wait=30`, as a page or `stream_stem`
does) and one reader that asks for a segment and never reads the answer. Each server's peak RSS
(VmHWM from /proc) is printed and the ratio; floor: within 15 %. The live spool is on disk
(a segment per stem in memory), and a reader costs the server one segment at most.

Plain httpx in this process (no torch, no numpy); the servers are children.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _cpu import cpu_model
from _fixtures import build_track
from _serve import ServeProcess, proc_status

MAX_SEGMENTS = 100_000  # bounds a reader's loop (30 min = 1212 segments)


def submit(server: ServeProcess, track: Path) -> str:
    with track.open("rb") as handle:
        reply = httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": ("track.wav", handle)}, data={"analyze": "false"}, timeout=600
        )
    reply.raise_for_status()
    return reply.json()["job_id"]


def wait_done(server: ServeProcess, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(1.0)
    raise SystemExit(f"job {job_id} did not end within {timeout_s:g} s")


def follow(server: ServeProcess, job_id: str, stem: str, result: dict) -> None:
    """Read every segment of `stem` as it becomes ready; counts frames and bytes."""
    frames = segments = 0
    started = time.monotonic()
    with httpx.Client(timeout=90) as client:
        index = 0
        while index < MAX_SEGMENTS:
            reply = client.get(f"{server.url}/api/v1/jobs/{job_id}/stems/{stem}/live/{index}?wait=30")
            if reply.status_code == 425:
                continue
            if reply.status_code == 416:
                break
            reply.raise_for_status()
            if segments == 0:
                result["first_s"] = time.monotonic() - started
            frames += (len(reply.content) - 52) // 8  # header 52 bytes, stereo float32
            segments += 1
            index += 1
    result.update(frames=frames, segments=segments)


def stall(server: ServeProcess, job_id: str) -> socket.socket:
    """A reader that asks for segment 0 (waiting for it) and never reads the answer."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /api/v1/jobs/{job_id}/stems/vocals/live/0?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", default="dsp")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    with tempfile.TemporaryDirectory(prefix="musicsep-live-bench-", dir=Path.home() / ".cache") as tmp:
        tmp = Path(tmp)
        track = build_track(tmp / "track.wav", args.minutes * 60)
        env = {"MUSICSEP_MAX_DURATION_S": "7200", "MUSICSEP_MAX_UPLOAD_MB": "2000", "OMP_NUM_THREADS": "1"}
        plain = ServeProcess(tmp / "plain", env, model=args.model, log=tmp / "plain.log")
        watched = ServeProcess(tmp / "watched", env, model=args.model, log=tmp / "watched.log")
        try:
            started = time.monotonic()
            plain_job, watched_job = submit(plain, track), submit(watched, track)
            results: dict[str, dict] = {"vocals": {}, "drums": {}}
            readers = [
                threading.Thread(target=follow, args=(watched, watched_job, stem, results[stem]), daemon=True)
                for stem in results
            ]
            for reader in readers:
                reader.start()
            stalled = stall(watched, watched_job)
            timeout = max(600.0, args.minutes * 60 * 4)
            ends = {
                name: wait_done(server, job, timeout)
                for name, server, job in (("plain", plain, plain_job), ("watched", watched, watched_job))
            }
            for reader in readers:
                reader.join(timeout=120)
            wall = time.monotonic() - started
            peaks = {
                name: proc_status(server.pid, "VmHWM") / 1024
                for name, server in (("plain", plain), ("watched", watched))
            }
            stalled.close()
        finally:
            plain.stop()
            watched.stop()
    for name, job in ends.items():
        assert job["status"] == "completed", f"{name}: {job['status']} {job.get('error')}"
    frames = int(args.minutes * 60 * 44100)
    for stem, result in results.items():
        assert result.get("frames") == frames, f"{stem} reader got {result.get('frames')} of {frames} frames"
    ratio = peaks["watched"] / peaks["plain"]
    print(f"track: {args.minutes:g} min, model {args.model}; both jobs ran side by side, {wall:.0f} s wall")
    print(f"{'server':<34} {'peak RSS MB':>12}")
    print(f"{'no live reader':<34} {peaks['plain']:>12.0f}")
    print(f"{'2 live readers + 1 stalled reader':<34} {peaks['watched']:>12.0f}")
    for stem, result in results.items():
        print(
            f"reader {stem}: {result['segments']} segments, {result['frames']} frames, first after "
            f"{result['first_s']:.1f} s"
        )
    ok = abs(ratio - 1.0) <= 0.15
    print(f"peak RSS with readers / without = {ratio:.3f} (floor: within 0.85-1.15) {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
