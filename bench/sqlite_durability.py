"""What `synchronous=FULL` (an accepted job survives a power cut) costs the embedded job store, against the
NORMAL it replaced.

Both settings run in the same process on the same disk, alternating round by round: one job
create (`SqliteStore.insert_job`, the write behind every 202) and one event append
(`EventLog.append`, the write behind every progress event), each its own transaction as in the
server. Printed: the median and p95 of each, and the ratio FULL / NORMAL of the medians. The
cost is the fsync of the WAL at each commit, so it depends on the disk: run it with `--dir` on
the filesystem of the real data dir (a tmpfs makes fsync free and the ratio meaningless).

    .venv/bin/python bench/sqlite_durability.py [--dir PATH] [--ops 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from musicsep.service.events import EventLog
from musicsep.service.jobs import Job, JobSpec
from musicsep.service.sqlite_store import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402

DEADLINE_S = 180.0
LEVELS = ("normal", "full")


def filesystem(path: Path) -> str:
    try:
        return (
            subprocess.run(
                ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def open_store(folder: Path, level: str) -> SqliteStore:
    store = SqliteStore(folder / "musicsep.sqlite3")
    if level == "normal":
        # The baseline: NORMAL, the setting the store used before FULL, on its own connection.
        with store._lock:
            store._db.execute("PRAGMA synchronous=NORMAL")
    assert store.durability() == ("wal", level)
    return store


def one_round(folder: Path, level: str, ops: int, first_seq: int) -> tuple[list[float], list[float]]:
    """Per-operation seconds of `ops` job creates, then of `ops` event appends."""
    store = open_store(folder, level)
    log = EventLog(store)
    creates, appends = [], []
    try:
        for i in range(ops):
            job = Job(id=f"{first_seq + i:032x}", spec=JobSpec(model="htdemucs"), seq=first_seq + i)
            start = time.perf_counter()
            store.insert_job(job)
            creates.append(time.perf_counter() - start)
        job_id = f"{first_seq:032x}"
        for i in range(ops):
            payload = {
                "stage": "separating",
                "percent": i * 100 / ops,
                "chunk": i,
                "chunks": ops,
                "eta_s": 1.0,
                "elapsed_s": 1.0,
            }
            start = time.perf_counter()
            log.append(job_id, "progress", payload)
            appends.append(time.perf_counter() - start)
    finally:
        store.close()
    return creates, appends


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(0.95 * (len(ordered) - 1))] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where the databases go (default: here)")
    parser.add_argument("--ops", type=int, default=300, help="creates and appends per round and setting")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sqlite-durability-", dir=args.dir))
    print(f"CPU: {cpu_model()}")
    print(f"databases in {root} ({filesystem(root)})")
    results = {level: ([], []) for level in LEVELS}
    deadline = time.monotonic() + DEADLINE_S
    seq = 1
    try:
        for round_ in range(args.rounds):
            for level in LEVELS if round_ % 2 == 0 else reversed(LEVELS):
                if time.monotonic() > deadline:
                    break
                creates, appends = one_round(root / level, level, args.ops, seq)
                seq += args.ops
                results[level][0].extend(creates)
                results[level][1].extend(appends)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {}
    for level in LEVELS:
        for what, samples in zip(("job create", "event append"), results[level], strict=True):
            median, p95 = summary(samples)
            medians[(level, what)] = median
            print(
                f"synchronous={level.upper():6s} {what:12s}: median {median:8.1f} us, p95 {p95:8.1f} us "
                f"({len(samples)} ops)"
            )
    for what in ("job create", "event append"):
        ratio = medians[("full", what)] / medians[("normal", what)]
        print(f"{what}: FULL / NORMAL = {ratio:.2f}x (+{medians[('full', what)] - medians[('normal', what)]:.1f} us)")


if __name__ == "__main__":
    main()
