"""Fixtures for the scale-out tests: the machine's Redis on 127.0.0.1:6379, isolated per test.

Each test gets its own key prefix in a database no other part of the project uses (13), and every
key under that prefix is deleted afterwards. Without a reachable Redis the tests that need it skip.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

redis = pytest.importorskip("redis", reason="the `scaleout` extra (redis) is not installed")

REDIS_URL = "redis://127.0.0.1:6379/13"


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")
    return REDIS_URL


@contextmanager
def isolated_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is removed on exit."""
    prefix = f"musicsep-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix for one test."""
    with isolated_prefix(redis_url) as prefix:
        yield prefix


#: Credentials for the S3 test server (it accepts any).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """An S3 server on 127.0.0.1: moto's standalone server (a real HTTP S3 endpoint), because
    MinIO cannot be installed on this machine. boto3 talks to it exactly as to R2 or MinIO."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto[server] is not installed")
    import httpx

    from .scaleout import harness, wait_until

    port = harness.free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 30, "moto_server to answer")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
