"""Run a command and report its wall time, CPU time and peak RSS (from the kernel, via wait4).

Linux carries the peak RSS over fork and exec: a child's ru_maxrss is at least its parent's RSS
when it started. The calling bench must therefore stay small; `measure` refuses to run from a
process that has imported torch (build models and tracks with `_fixtures.build_*` instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def measure(cmd: list[str], env: dict | None = None) -> Measurement:
    """wait4 gives this one child's rusage (ru_maxrss = its peak RSS); output goes through files
    so that nothing reaps the child before wait4 does."""
    if "torch" in sys.modules:
        raise RuntimeError(
            "measure() from a process that imported torch would report its RSS "
            "as the child's peak; build fixtures with _fixtures.build_*"
        )
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measurement(
            wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read()
        )
