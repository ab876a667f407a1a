"""Downloaded files get the song's name the server sends, in UTF-8 when it sends it so, never a
path outside the folder they are saved to, and are whole or not there."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from musicsep.clients import AsyncClient, Client, ConnectionFailed
from musicsep.clients.downloads import filename_from

LINK = "/api/v1/jobs/3f2b/stems/vocals?expires=1&sig=abc"


def test_the_utf8_name_wins_over_the_ascii_fallback_whichever_comes_first():
    utf8 = "filename*=UTF-8''Mon%20Morceau%20pr%C3%A9f%C3%A9r%C3%A9%20-%20vocals.wav"
    ascii_name = 'filename="Mon Morceau prefere - vocals.wav"'
    for header in (f"attachment; {ascii_name}; {utf8}", f"attachment; {utf8}; {ascii_name}"):
        assert filename_from(header, LINK) == "Mon Morceau préféré - vocals.wav"
    assert filename_from(f"attachment; {ascii_name}", LINK) == "Mon Morceau prefere - vocals.wav"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../../.bashrc"', ".bashrc"),
        ('attachment; filename="C:\\\\Users\\\\me\\\\evil.wav"', "evil.wav"),
        ('attachment; filename=".."', "vocals"),
        ("attachment; filename*=UTF-8''..%2F..%2Fx.wav", "x.wav"),
        ("", "vocals"),
    ],
)
def test_a_name_is_only_its_last_part_and_no_name_falls_back_to_the_link(header, expected):
    assert filename_from(header, LINK) == expected


def test_a_link_without_a_usable_name_saves_as_download():
    assert filename_from("", "http://127.0.0.1:9/") == "download"


@pytest.fixture
def cut_short() -> Iterator[str]:
    """A 127.0.0.1 server that promises 100000 bytes, sends 10 and closes (a connection lost)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve() -> None:
        for _ in range(2):  # one request from each client
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(timeout=30)


def test_a_download_cut_short_keeps_the_earlier_file_and_leaves_no_partial_one(cut_short, tmp_path):
    earlier = tmp_path / "vocals.wav"
    earlier.write_bytes(b"the earlier, whole stem")
    with Client(cut_short) as client, pytest.raises(ConnectionFailed) as sync_failed:
        client.download("/stems/vocals", earlier)

    async def scenario() -> None:
        async with AsyncClient(cut_short) as client:
            await client.download("/stems/vocals", earlier)

    with pytest.raises(ConnectionFailed) as async_failed:
        asyncio.run(scenario())
    assert cut_short in str(sync_failed.value) and cut_short in str(async_failed.value)
    assert earlier.read_bytes() == b"the earlier, whole stem"
    assert list(tmp_path.iterdir()) == [earlier]
