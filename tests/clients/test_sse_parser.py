"""The shared SSE parser gives the same messages however the bytes are split."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from musicsep.clients.sse import SSEParser

STREAM = (
    "retry: 2000\r\n\r\n"
    ": ping\r\n\r\n"
    'id: 1\r\nevent: queued\r\ndata: {"event":"queued","position":1}\r\n\r\n'
    'id: 2\nevent: progress\ndata: {"a":1}\ndata: {"b":2}\n\n'
    'id: 3\revent: completed\rdata:{"event":"completed"}\r\r'
)


def _parse(chunks: list[str]) -> list[tuple[str, str, str | None]]:
    parser = SSEParser()
    out = []
    for chunk in chunks:
        out.extend((m.event, m.data, m.id) for m in parser.feed(chunk))
    return out


EXPECTED = [
    ("queued", '{"event":"queued","position":1}', "1"),
    ("progress", '{"a":1}\n{"b":2}', "2"),
    ("completed", '{"event":"completed"}', "3"),
]


def test_whole_stream():
    assert _parse([STREAM]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_any_chunking(cuts):
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert _parse(chunks) == EXPECTED


def test_retry_is_remembered():
    parser = SSEParser()
    parser.feed("retry: 1500\r\n\r\n")
    assert parser.retry_ms == 1500


def test_a_data_line_of_megabytes_in_small_chunks_parses_in_linear_time():
    """A `payload=base64` result is one `data:` line of megabytes, read 64 KB at a time; the parser
    searched the whole pending line again at every chunk (5 MB: 15 s, quadratic)."""
    import time

    line = "data: " + "A" * 5_000_000 + "\r\n\r\n"
    parser = SSEParser()
    started = time.perf_counter()
    messages = [m for i in range(0, len(line), 65536) for m in parser.feed(line[i : i + 65536])]
    assert time.perf_counter() - started < 3.0
    assert [len(m.data) for m in messages] == [5_000_000]
