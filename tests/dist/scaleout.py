"""Scale-out processes for the tests: `musicsep serve` (celery mode) and `musicsep worker`.

Every process is a real subprocess on 127.0.0.1 sharing one Redis key prefix (database 13) and
one data dir; each is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import server_harness as harness
from server_harness import wait_until

WORKER_READY_S = 90.0


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ScaleOut:
    env: dict[str, str]
    logs: Path
    apis: list = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def api(self) -> str:
        index = len(self.apis)
        server = harness.spawn_server(self.env, self.logs / f"api{index}.log")
        self.apis.append(server)
        return server.url

    def worker(self, name: str, extra_env: dict[str, str] | None = None) -> Worker:
        log = self.logs / f"{name}.log"
        env = {**os.environ, **self.env, **(extra_env or {}), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        handle = log.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "musicsep.cli", "worker", "--name", f"{name}@test"],
            env=env, stdout=handle, stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log)
        self.workers.append(worker)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {log.read_text()[-3000:]}")
            return "ready." in log.read_text(errors="replace")

        wait_until(ready, WORKER_READY_S, f"worker {name} to be ready")
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for server in self.apis:
            server.terminate()
