"""`musicsep serve` start-up: time from spawn to the first 200 on /health, this tree against a baseline.

    git worktree add /tmp/old325 325da74
    python bench/serve_startup.py --baseline-src /tmp/old325/src --runs 5
    git worktree remove /tmp/old325

The model folder (built once under /tmp by bench/_fixtures.py, never committed) holds a randomly
initialised full-size HTDemucs as `htdemucs` (the released layout: `htdemucs.yaml` naming one
`.th` member) and a small HDemucs; `MUSICSEP_MODEL_REPO` points at it and `htdemucs` is the
default model. Runs of the two trees alternate (a busy machine slows both alike), each with a
fresh data dir; the median of each is printed, and their difference. A last run of each under
`strace -f -e trace=open,openat` counts the weight files the start opened (`.th` / `.safetensors`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _cpu import cpu_model  # noqa: E402

SRC = HERE.parent / "src"
STARTUP_LIMIT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once(src: Path, models: Path, data_dir: Path, prefix: tuple[str, ...] = ()) -> tuple[float, float]:
    """(wall seconds from spawn to the first 200 on /health, the server's CPU seconds by then);
    the server is stopped before returning. CPU time hardly moves when other work shares the
    machine; the wall time does."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "MUSICSEP_MODEL_REPO": str(models),
        "MUSICSEP_DEFAULT_MODEL": "htdemucs",
        "MUSICSEP_DATA_DIR": str(data_dir),
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "musicsep.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=src.parent,
    )
    try:
        while time.monotonic() - started < STARTUP_LIMIT_S:
            if process.poll() is not None:
                raise RuntimeError(f"the server from {src} exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.monotonic() - started, cpu_seconds(process.pid)
            except httpx.TransportError:
                pass
            time.sleep(0.01)  # polling interval (not synchronisation): the resolution of the figure
        raise TimeoutError(f"no 200 on /health within {STARTUP_LIMIT_S} s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def weight_files_opened(src: Path, models: Path, work: Path, name: str) -> int:
    """Weight files the start opened, from an strace of the whole process tree."""
    trace = work / f"strace-{name}.txt"
    start_once(
        src, models, work / f"data-strace-{name}", ("strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace))
    )
    opened = {
        line.split('"')[1]
        for line in trace.read_text(errors="replace").splitlines()
        if str(models) in line and ('.th"' in line or '.safetensors"' in line) and "ENOENT" not in line
    }
    return len(opened)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, required=True, help="the src/ folder of the baseline tree")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--models",
        type=Path,
        default=Path("/tmp/musicsep-startup-models"),
        help="model folder (built here when missing)",
    )
    args = parser.parse_args()
    if not (args.models / "htdemucs.yaml").is_file():
        subprocess.run([sys.executable, str(HERE / "_fixtures.py"), "models", str(args.models)], check=True)
    print(f"CPU: {cpu_model()}; load average before: {os.getloadavg()[0]:.2f}")
    trees = {"baseline": args.baseline_src.resolve(), "this tree": SRC}
    walls: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="musicsep-startup-") as folder:
        work = Path(folder)
        for run in range(args.runs):
            for name, src in trees.items():
                data_dir = work / f"data-{name.replace(' ', '-')}-{run}"
                wall, cpu = start_once(src, args.models, data_dir)
                walls[name].append(wall)
                cpus[name].append(cpu)
                shutil.rmtree(data_dir, ignore_errors=True)
        opened = {
            name: weight_files_opened(src, args.models, work, name.replace(" ", "-"))
            if shutil.which("strace")
            else None
            for name, src in trees.items()
        }
    median = {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in trees}
    for name in trees:
        print(
            f"{name:>9}: median {median[name][0]:.2f} s to the first 200 on /health, {median[name][1]:.2f} CPU s "
            f"(runs: {', '.join(f'{w:.2f}/{c:.2f}' for w, c in zip(walls[name], cpus[name], strict=True))}); "
            f"weight files opened: {opened[name]}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine stretches the wall times)")
    (old_wall, old_cpu), (new_wall, new_cpu) = median["baseline"], median["this tree"]
    print(
        f"this tree: {old_wall - new_wall:+.2f} s sooner ({new_wall / old_wall:.2f}x the baseline's wall time), "
        f"{old_cpu - new_cpu:+.2f} CPU s less ({new_cpu / old_cpu:.2f}x)"
    )


if __name__ == "__main__":
    main()
