"""The first librosa use of each process holds a machine-wide lock, so first uses never overlap.

librosa compiles its numba functions on first use into a shared on-disk cache, and two processes
doing that at once crash (model/numba_cache.py; `python bench/numba_first_use.py` shows plain
librosa crashing and musicsep not). Here a real process sits inside its first use: the lock is
then held (another process cannot take it), and once the first use ends another one enters.
"""

from __future__ import annotations

import subprocess
import sys

HOLD = """
import sys
from musicsep.model.numba_cache import first_numba_use
with first_numba_use():
    print("holding", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

TRY_NOW = """
from filelock import FileLock, Timeout
from musicsep.model.numba_cache import _LOCK_PATH
try:
    FileLock(_LOCK_PATH).acquire(timeout=0)
    print("free")  # not asserted: in a parallel run another process may be in its first use
except Timeout:
    print("held")
"""

ENTER = """
from musicsep.model.numba_cache import first_numba_use
with first_numba_use():
    print("entered")
"""


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()


def test_first_librosa_uses_of_two_processes_never_overlap():
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert _run(TRY_NOW) == "held"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert _run(ENTER) == "entered"
    finally:
        holder.kill()
        holder.wait(timeout=30)


SILENCE_FIRST = """
import librosa.beat
import numpy as np
from musicsep.model import numba_cache
from musicsep.model.analysis.analyze import analyze_blocks

under_lock = []
real = librosa.beat.beat_track


def recording(*args, **kwargs):
    under_lock.append(numba_cache._this_process.locked())
    return real(*args, **kwargs)


librosa.beat.beat_track = recording
analyze_blocks([np.zeros((2, 3 * 44100), np.float32)], 44100)
print(under_lock)
"""


def test_a_first_track_without_a_pulse_still_compiles_the_beat_tracker_under_the_lock():
    """Silence never reaches the beat tracker; if the first use skipped it, a later track would
    compile it unlocked beside another process's first use (the crash the lock is there for)."""
    assert _run(SILENCE_FIRST) == "[True]"


def test_the_install_time_precompile_runs_the_analysis_and_says_so():
    """`make setup` and the Docker images run it so that a fresh server's first analysis does not
    pay numba's compilation (56 s on a 2-core AVX2 EPYC); here the suite's cache is warm already."""
    done = subprocess.run(
        [sys.executable, "-m", "musicsep.model.analysis.precompile"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "numba functions are compiled" in done.stdout
