"""Fixtures for the scale-out tests: the machine's Redis on 127.0.0.1:6379, isolated per test.

Each test gets its own key prefix in a database no other part of the project uses (13), and every
key under that prefix is deleted afterwards. Without a reachable Redis the tests that need it skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

redis = pytest.importorskip("redis", reason="the `dist` extra (redis) is not installed")

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


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is removed when the test ends."""
    prefix = f"musicsep-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
