"""Redis stopped: submissions answer 503 `queue_unavailable`, never
202-then-lost, and `GET /health` says Redis is down (503, not a 500); when Redis is back, the API
and the worker reconnect by themselves and /health answers 200 again.

This test runs its own `redis-server` (append-only file in tmp_path, so the restart keeps the
data like a production Redis must), because stopping the machine's shared Redis is not an option.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from .scaleout import ScaleOut, cluster_env, harness, wait_until
from .test_celery_e2e import events_of, submit

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class PrivateRedis:
    def __init__(self, folder, port: int) -> None:
        self.folder, self.port = folder, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.up, 30, "redis-server to start")

    def up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path, harness.free_port())
    server.start()
    yield server
    server.stop()


def health(api: str) -> tuple[int, dict]:
    reply = httpx.get(f"{api}/health", timeout=30)
    return reply.status_code, reply.json()


def test_submissions_and_health_answer_503_while_redis_is_down_and_recover_when_it_is_back(
    tmp_path, tiny_model_repo, private_redis, make_clip
):
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    env = cluster_env(tmp_path / "data", tiny_model_repo, url, "musicsep:")
    (tmp_path / "logs").mkdir()
    cluster = ScaleOut(env, tmp_path / "logs")
    try:
        api = cluster.api()
        cluster.worker("w1")
        clip = make_clip(seconds=2.0)
        before = submit(api, clip, analyze="false")
        assert events_of(api, before)[-1][1] == "completed"
        status, body = health(api)
        assert status == 200 and body["status"] == "ok" and body["dependencies"] == {"redis": True}

        private_redis.stop()
        for _ in range(3):
            with clip.open("rb") as handle:
                reply = httpx.post(f"{api}/api/v1/jobs", files={"file": ("a.wav", handle, "audio/wav")}, timeout=30)
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"]["code"] == "queue_unavailable"
            assert "cannot be reached" in reply.json()["error"]["message"]
            assert "nothing was queued" in reply.json()["error"]["message"]
            assert reply.headers["Retry-After"].isdigit()
        for path in (f"/api/v1/jobs/{before}", f"/api/v1/jobs/{before}/events", "/api/v1/jobs"):
            reply = httpx.get(f"{api}{path}", timeout=30)
            assert reply.status_code == 503, (path, reply.text)
            assert reply.json()["error"]["message"] == "the job store cannot be reached right now; retry shortly"
            assert reply.headers["Retry-After"].isdigit()
        status, body = health(api)
        assert status == 503
        assert body["status"] == "unavailable" and body["dependencies"] == {"redis": False}
        assert body["queue_depth"] is None

        private_redis.start()
        wait_until(lambda: health(api)[0] == 200, 30, "/health to answer 200 again")
        assert health(api)[1]["dependencies"] == {"redis": True}
        after = submit(api, clip, analyze="false")
        assert events_of(api, after)[-1][1] == "completed"
        listed = httpx.get(f"{api}/api/v1/jobs", timeout=10).json()["jobs"]
        assert sorted(job["id"] for job in listed) == sorted([before, after])
    finally:
        cluster.stop()
