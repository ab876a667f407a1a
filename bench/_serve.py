"""A `musicsep serve` child process for the benches that measure a real server from outside.

One place for what every such bench needs: a free loopback port, a bounded wait for `/health`,
a stop that cannot hang (SIGTERM, then SIGKILL), and the server's RSS, CPU time and open file
descriptors read from /proc (so the figures are the child's, never the bench's own). Plain
httpx, no musicsep import: the bench process stays free of torch and numpy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int, field: str) -> float:
    """A numeric field of /proc/PID/status (VmRSS and VmHWM are in kB; Threads is a count)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


class ServeProcess:
    """`musicsep serve` on 127.0.0.1, CPU only and offline, with the DSP model unless told.

    `env` is added to (and overrides) the defaults; `args` go after `serve --host --port`. With
    `log`, the server's output goes there (and its tail into the error when it will not start).
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        log: Path | None = None,
        model: str = "dsp",
        startup_s: float = 120.0,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb") if log is not None else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "musicsep.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env={
                **os.environ,
                "MUSICSEP_DATA_DIR": str(data_dir),
                "MUSICSEP_DEFAULT_MODEL": model,
                "MUSICSEP_FALLBACK": "none",
                "MUSICSEP_OFFLINE": "1",
                "MUSICSEP_DEVICE": "cpu",
                **(env or {}),
            },
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        try:
            self.wait_healthy(startup_s)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, timeout_s: float) -> None:
        """Bounded wait until `/health` answers 200; SystemExit when the server exits or is late."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"musicsep serve exited during startup{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"musicsep serve did not start in {timeout_s:g} s{self._log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, and SIGKILL when it has not exited within `timeout_s`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS") / 1024

    def threads(self) -> int:
        return int(proc_status(self.pid, "Threads"))

    def cpu_s(self) -> float:
        """User + system CPU seconds (fields 14 and 15 of /proc/PID/stat, after the command name)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def _log_tail(self) -> str:
        if self.log is None:
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        return f" (log {self.log}):\n{self.log.read_text(errors='replace')[-2000:]}"
