"""Readers that stall on a `payload=base64` job's event log must not grow the server's memory.

A `musicsep serve` subprocess on 127.0.0.1 (a small HDemucs built like bench/_fixtures.py's)
separates one track twice: `payload=url` (the baseline, a log of a few KB) and `payload=base64`
(every stem inlined: about 19 MB of log for 20 s of stereo audio, 4 stems at wav16). For each
job, N readers (40) open its `GET …/events` with a small receive buffer (SO_RCVBUF 4 KiB), read
about 1 KB and stop reading. The server's RSS is read before they connect, at its peak while they
hang (VmRSS sampled every 5 ms, and VmHWM reset through /proc/PID/clear_refs before the phase),
and after they have gone. Floor: the base64 job's peak growth under 100 MB (before the fix, each
reader held its own decoded and re-encoded copy of the log: 806 MB -> 2,017 MB with 40).

    python bench/stalled_readers.py [--seconds 20] [--readers 40]

Bounded: each wait has a deadline, the whole run stops after --budget-s. The process that runs
this never imports torch or musicsep (the server is a child), so its own memory stays out of the
figures. Exit status 1 when the floor is not met.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402
from _fixtures import build_model_folder, build_track  # noqa: E402
from _serve import proc_status  # noqa: E402
from _server_leg import WarmServer  # noqa: E402

FLOOR_MB = 100.0
#: What the base64 of one second of the 4 stems weighs (44.1 kHz stereo 16-bit, 4/3 for base64).
BASE64_BYTES_PER_S = 4 * 44100 * 2 * 2 * 4 / 3


def rss_mb(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def reset_peak(pid: int) -> None:
    """Linux resets VmHWM (peak RSS) to the current RSS when "5" is written to clear_refs."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # then only the sampled peak counts


class PeakSampler(threading.Thread):
    """The highest VmRSS seen every 5 ms until `stop`."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, rss_mb(pid)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._done.set()
        self.join(timeout=5)
        return max(self.peak, proc_status(self.pid, "VmHWM") / 1024)


def settle(pid: int, timeout_s: float, window_s: float = 1.0, tolerance_mb: float = 1.0) -> float:
    """Wait (bounded) until the RSS moves by less than `tolerance_mb` over `window_s`; the RSS."""
    deadline = time.monotonic() + timeout_s
    samples: list[tuple[float, float]] = []
    while True:
        now, rss = time.monotonic(), rss_mb(pid)
        samples = [(t, r) for t, r in samples if now - t <= window_s] + [(now, rss)]
        spread = max(r for _, r in samples) - min(r for _, r in samples)
        if (now - samples[0][0] >= window_s * 0.9 and spread < tolerance_mb) or now > deadline:
            return rss
        time.sleep(0.1)


def run_job(url: str, track: Path, payload: str) -> tuple[str, int]:
    """Submit, read the job's log to its end; (events path, bytes of the log as a reader gets it)."""
    fields = {"model": "small", "payload": payload, "format": "wav16", "analyze": "false", "shifts": "0"}
    with httpx.Client(timeout=httpx.Timeout(60.0, read=600.0)) as http:
        with track.open("rb") as audio:
            accepted = http.post(f"{url}/api/v1/jobs", data=fields, files={"file": (track.name, audio, "audio/wav")})
        accepted.raise_for_status()
        path = accepted.json()["events_url"]
        size, tail, completed = 0, b"", False
        with http.stream("GET", url + path) as events:  # the server ends it after the terminal event
            for chunk in events.iter_raw():
                size += len(chunk)
                completed = completed or b"event: completed" in tail + chunk
                tail = chunk[-32:]
        if not completed:
            raise SystemExit(f"the {payload} job did not complete: {tail!r}")
    return path, size


def stalled_reader(url: str, path: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    sock.settimeout(30)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    got = b""
    while len(got) < 1024 and (piece := sock.recv(1024 - len(got))):
        got += piece
    if not got.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"a reader was answered {got[:40]!r}")
    return sock


def phase(server: WarmServer, path: str, readers: int) -> tuple[float, float, float]:
    """(before, peak, after) RSS in MB of the server around `readers` stalled readers of `path`."""
    pid = server.process.pid
    before = settle(pid, 30)
    reset_peak(pid)
    sampler = PeakSampler(pid)
    sampler.start()
    socks = [stalled_reader(server.url, path) for _ in range(readers)]
    settle(pid, 30, window_s=2.0)  # the server has written what it will; they hang
    peak = sampler.stop()
    for sock in socks:
        sock.close()
    after = settle(pid, 30)
    return before, peak, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="track length (20 s: ~19 MB of base64 log)")
    parser.add_argument("--readers", type=int, default=40)
    parser.add_argument("--budget-s", type=float, default=900.0, help="stop the whole run after this long")
    args = parser.parse_args()
    servers: list[WarmServer] = []

    def out_of_time() -> None:
        print(f"stopped: the {args.budget_s:g} s budget is spent", flush=True)
        for running in servers:
            running.process.kill()
        os._exit(2)

    watchdog = threading.Timer(args.budget_s, out_of_time)
    watchdog.daemon = True
    watchdog.start()

    print(f"CPU: {cpu_model()}")
    with tempfile.TemporaryDirectory(prefix="musicsep-stalled-") as tmp:
        root = Path(tmp)
        repo = build_model_folder(root / "models", full_size=False, small=True)
        track = build_track(root / "track.wav", args.seconds)
        inline_mb = max(20.0, args.seconds * BASE64_BYTES_PER_S * 0.75 / 1e6 * 1.2)
        server = WarmServer(
            repo, root / "data", {"MUSICSEP_MAX_INLINE_MB": str(inline_mb), "MUSICSEP_SSE_PING_S": "1"}, model="small"
        )
        servers.append(server)
        try:
            url_path, url_size = run_job(server.url, track, "url")
            b64_path, b64_size = run_job(server.url, track, "base64")
            print(
                f"track {args.seconds:g} s stereo, 4 stems wav16; event log as a reader gets it: "
                f"payload=url {url_size / 1e3:.1f} KB, payload=base64 {b64_size / 1e6:.1f} MB"
            )
            print(f"{args.readers} readers per job, each reads ~1 KB and stalls (SO_RCVBUF 4 KiB)")
            rows = {
                "url (baseline)": phase(server, url_path, args.readers),
                "base64": phase(server, b64_path, args.readers),
            }
        finally:
            server.stop()
    print(f"{'job':<16}{'before MB':>11}{'peak MB':>10}{'after MB':>10}{'peak growth MB':>16}")
    for name, (before, peak, after) in rows.items():
        print(f"{name:<16}{before:>11.1f}{peak:>10.1f}{after:>10.1f}{peak - before:>16.1f}")
    base = rows["url (baseline)"][1] - rows["url (baseline)"][0]
    grown = rows["base64"][1] - rows["base64"][0]
    print(
        f"peak growth, base64 job / baseline job: {grown / max(base, 1.0):.2f}x "
        f"(baseline growth floored at 1 MB for the ratio)"
    )
    passed = grown < FLOOR_MB
    print(f"floor: base64 job's peak growth {grown:.1f} MB < {FLOOR_MB:g} MB: {'PASS' if passed else 'FAIL'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
