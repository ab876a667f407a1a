"""Scale-out processes for the tests: `musicsep serve` (celery mode) and `musicsep worker`.

Every process is a real subprocess on 127.0.0.1 sharing one Redis key prefix (database 13) and
one data dir; each is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import server_harness as harness
from server_harness import wait_until

from .conftest import AWS_ENV

WORKER_READY_S = 90.0


def cluster_env(data_dir: Path, model_repo: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """The settings every process of a test cluster shares (tiny model, CPU, shared key)."""
    return {
        "MUSICSEP_QUEUE": "celery",
        "MUSICSEP_REDIS_URL": redis_url,
        "MUSICSEP_REDIS_PREFIX": redis_prefix,
        "MUSICSEP_DATA_DIR": str(data_dir),
        "MUSICSEP_MODEL_REPO": str(model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_FALLBACK": "none",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "MUSICSEP_SIGNING_KEY": "a-shared-signing-key-for-every-node",
        "MUSICSEP_MAX_ATTEMPTS": "3",
        "MUSICSEP_VISIBILITY_TIMEOUT_S": "600",
        # Test-only: the webhook receivers and audio_url servers of these tests are on 127.0.0.1.
        "MUSICSEP_ALLOW_LOOPBACK_URLS": "1",
    }


def s3_env(endpoint: str) -> dict[str, str]:
    """MUSICSEP_STORAGE=s3 on a fresh bucket of the test S3 server at `endpoint`."""
    import boto3

    bucket = f"musicsep-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).create_bucket(Bucket=bucket)
    return {**AWS_ENV, "MUSICSEP_STORAGE": "s3", "MUSICSEP_S3_BUCKET": bucket, "MUSICSEP_S3_ENDPOINT_URL": endpoint}


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        harness.stop_process(self.process)


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
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
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
