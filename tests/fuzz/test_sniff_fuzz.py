"""The audio sniffer on arbitrary bytes: it never raises, and only the first HEAD_BYTES matter.

The API answers 415 from `sniff_format(head)` before an upload is stored, and the decoder pins
FFmpeg to the demuxer it names, so a crash here would be a 500 on the first bytes of a body and a
wrong answer would hand FFmpeg a demuxer the file does not match.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from musicsep.model.audio.sniff import DEMUXERS, HEAD_BYTES, sniff_format

from .budget import budget
from .media import front_bytes, seeds


@budget(3000)
@given(head=st.one_of(st.binary(max_size=64), front_bytes()), tail=st.binary(max_size=64))
@example(head=b"", tail=b"")
@example(head=b"\xff", tail=b"")
@example(head=b"\xff\xe0", tail=b"")
@example(head=b"RIFF", tail=b"")
@example(head=b"\0\0\0\0ftyp", tail=b"")
def test_sniff_never_raises_and_reads_only_the_head(head: bytes, tail: bytes) -> None:
    found = sniff_format(head)
    assert found is None or found in DEMUXERS
    if len(head) >= HEAD_BYTES:
        assert sniff_format(head + tail) == found
        assert sniff_format(head[:HEAD_BYTES]) == found


def test_every_seed_is_recognised() -> None:
    """The harnesses' seeds reach the decoder at all (a seed the sniffer refuses would test nothing)."""
    assert {name: sniff_format(data[:HEAD_BYTES]) is not None for name, data in seeds().items()} == {
        name: True for name in seeds()
    }
