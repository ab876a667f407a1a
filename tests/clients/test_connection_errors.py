"""A server that cannot be reached is the clients' own ConnectionFailed, naming the URL: never a
raw httpx or aiohttp exception, and at once, not after the event stream's reconnects."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from musicsep.clients import AsyncClient, Client, ClientError, ConnectionFailed
from musicsep.clients.events import Completed
from server_harness import free_port

CALLS = ["health", "models", "jobs", "job", "delete", "rename", "submit", "events", "separate", "download"]
#: A completed event whose one stem link points at the (unreachable) server.
COMPLETED = Completed(id=9, type="completed", raw={}, stems={"vocals": {"url": "/api/v1/jobs/j/stems/vocals"}})


@pytest.fixture
def down() -> str:
    """The URL of a 127.0.0.1 port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent() -> Iterator[str]:
    """A 127.0.0.1 port that takes connections (the kernel completes them) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def _sync_call(client: Client, name: str, clip, tmp_path) -> None:
    calls = {
        "health": lambda: client.health(),
        "models": lambda: client.models(),
        "jobs": lambda: client.jobs(status="completed"),
        "job": lambda: client.job("j"),
        "delete": lambda: client.delete("j"),
        "rename": lambda: client.rename("j", "Song"),
        "submit": lambda: client.submit(clip),
        "events": lambda: list(client.events("j")),
        "separate": lambda: list(client.separate(clip)),
        "download": lambda: client.download_all(COMPLETED, tmp_path / "stems"),
    }
    calls[name]()


async def _async_call(client: AsyncClient, name: str, clip, tmp_path) -> None:
    calls = {
        "health": client.health,
        "models": client.models,
        "jobs": lambda: client.jobs(status="completed"),
        "job": lambda: client.job("j"),
        "delete": lambda: client.delete("j"),
        "rename": lambda: client.rename("j", "Song"),
        "submit": lambda: client.submit(clip),
        "events": lambda: _drain(client.events("j")),
        "separate": lambda: _drain(client.separate(clip)),
        "download": lambda: client.download_all(COMPLETED, tmp_path / "stems"),
    }
    await calls[name]()


async def _drain(events) -> list:
    return [event async for event in events]


def test_every_sync_call_to_a_server_that_is_down_raises_connection_failed_with_the_url(down, make_clip, tmp_path):
    clip = make_clip(seconds=0.5)
    with Client(down) as client:
        for name in CALLS:
            started = time.monotonic()
            with pytest.raises(ConnectionFailed) as failed:
                _sync_call(client, name, clip, tmp_path)
            assert time.monotonic() - started < 5, f"{name} retried a refused connection"
            assert failed.value.url.startswith(down) and down in str(failed.value), name
            assert isinstance(failed.value, ClientError) and isinstance(failed.value, ConnectionError)
            assert not failed.value.timed_out


def test_every_async_call_to_a_server_that_is_down_raises_connection_failed_with_the_url(down, make_clip, tmp_path):
    clip = make_clip(seconds=0.5)

    async def scenario() -> list[ConnectionFailed]:
        raised = []
        async with AsyncClient(down) as client:
            for name in CALLS:
                with pytest.raises(ConnectionFailed) as failed:
                    await asyncio.wait_for(_async_call(client, name, clip, tmp_path), 5)
                raised.append(failed.value)
        return raised

    for name, error in zip(CALLS, asyncio.run(scenario()), strict=True):
        assert error.url.startswith(down) and down in str(error), name
        assert isinstance(error, ConnectionError) and not error.timed_out


def test_a_server_that_never_answers_is_a_timed_out_connection_failed_after_the_timeout(silent):
    started = time.monotonic()
    with Client(silent, timeout=0.3) as client, pytest.raises(ConnectionFailed) as sync_failed:
        client.health()

    async def scenario() -> None:
        async with AsyncClient(silent, timeout=0.3) as client:
            await client.job("j")

    with pytest.raises(ConnectionFailed) as async_failed:
        asyncio.run(scenario())
    assert time.monotonic() - started < 5
    for error in (sync_failed.value, async_failed.value):
        assert error.timed_out and "timed out" in str(error) and silent in str(error)


@pytest.mark.parametrize("url", ["localhost:8000", "http://127.0.0.1:80000", "ftp://gpu-box", "http://"])
def test_a_server_url_that_is_no_http_address_is_refused_when_the_client_is_made(url):
    for kind in (Client, AsyncClient):
        with pytest.raises(ValueError, match="a server URL is like http://127.0.0.1:8000") as refused:
            kind(url)
        assert repr(url) in str(refused.value)


#: Run inside a network namespace with only loopback: both clients call a host name that does
#: not resolve and print what they raised.
_UNRESOLVED = """
import asyncio, json, sys
from musicsep.clients import AsyncClient, Client, ConnectionFailed

async def call_async(url):
    async with AsyncClient(url) as client:
        await client.health()

url, seen = sys.argv[1], []
for call in (lambda: Client(url).health(), lambda: asyncio.run(call_async(url))):
    try:
        call()
    except ConnectionFailed as error:
        seen.append(str(error))
print(json.dumps(seen))
"""


def test_a_host_name_that_does_not_resolve_is_connection_failed_naming_the_url():
    """In a namespace with only loopback (`unshare -n`, root) no query leaves the machine: the
    name fails to resolve at once, as a typo'd or unregistered `*.localhost` name does."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs `unshare -n` (root) and iproute2 to keep the name lookup off the network")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -n` (root) to keep the name lookup off the network")
    url = "http://musicsep-box.localhost:8000"
    command = 'ip link set lo up && exec "$0" -c "$1" "$2"'
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", command, sys.executable, _UNRESOLVED, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert len(seen) == 2 and all(message.startswith(f"cannot reach {url}/health: ") for message in seen), seen
    assert all("name resolution" in message or "not known" in message for message in seen), seen
