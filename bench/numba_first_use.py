"""Several fresh processes doing their first librosa work at once: plain librosa crashes, musicsep does not.

Each round gives N processes a private copy of librosa (so its numba cache starts empty, as on a
fresh install, and the project's own cache is left alone) and starts them together: the baseline
calls `librosa.beat.beat_track` directly, musicsep runs `analyze_blocks` (its first librosa use
takes the machine-wide lock of model/numba_cache.py). It prints, per side, how many processes
died (exit status < 0 or 139: a segfault) and the round's wall time.

    python bench/numba_first_use.py [--processes 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import cpu_model  # noqa: E402

BASELINE = """
import numpy as np, librosa
y = (np.random.default_rng(0).standard_normal(22050 * 6) * 0.1).astype(np.float32)
librosa.beat.beat_track(y=y, sr=22050)
"""

MUSICSEP = """
import numpy as np
from musicsep.model.analysis import analyze_blocks
x = (np.random.default_rng(0).standard_normal((2, 44100 * 6)) * 0.1).astype(np.float32)
analyze_blocks([x], 44100)
"""


def one_round(code: str, processes: int) -> tuple[int, float]:
    """(processes that died, wall seconds) for one round on a fresh private librosa."""
    import librosa

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(Path(librosa.__file__).parent, Path(tmp) / "librosa", ignore=shutil.ignore_patterns("*.nb[ic]"))
        env = {**os.environ, "PYTHONPATH": tmp + os.pathsep + os.environ.get("PYTHONPATH", "")}
        started = time.monotonic()
        children = [
            subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL) for _ in range(processes)
        ]
        codes = [child.wait(timeout=600) for child in children]
        return sum(1 for rc in codes if rc < 0 or rc == 139), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cpu: {cpu_model()}; {args.processes} processes per round, {args.rounds} rounds, alternating")
    died = {"librosa": 0, "musicsep": 0}
    for round_ in range(1, args.rounds + 1):
        for side, code in (("librosa", BASELINE), ("musicsep", MUSICSEP)):
            lost, seconds = one_round(code, args.processes)
            died[side] += lost
            print(f"round {round_} {side:8}: {lost}/{args.processes} died, {seconds:.1f} s")
    total = args.processes * args.rounds
    print(f"died: librosa {died['librosa']}/{total}, musicsep {died['musicsep']}/{total}")
    return 0 if died["musicsep"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
