"""Seed media for the decoder and upload harnesses, and the mutations hypothesis applies to them.

The seeds are real files written by libsndfile (and the project's own MP3/Opus writers) when the
harness starts, each well under 64 KiB: the decoder front sees real headers whose chunk sizes,
channel counts, rates and tags the mutations then damage. Nothing here is committed audio.
"""

from __future__ import annotations

import io
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

#: What the decoder front is fed: the first 64 KiB of an upload.
FRONT_BYTES = 64 * 1024

#: 32-bit values that make header fields lie: sizes of 0, 1 and "everything", sign flips, the
#: format tag an unknown codec has (0x1234), 255 channels, rates below and far above the range.
_INTERESTING = (
    0,
    1,
    2,
    3,
    8,
    16,
    24,
    32,
    255,
    256,
    0x1234,
    0xFFFE,
    0xFFFF,
    4000,
    44100,
    768_001,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
)


def _tone(samplerate: int, channels: int, seconds: float) -> np.ndarray:
    t = np.arange(int(samplerate * seconds)) / samplerate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def _soundfile(fmt: str, subtype: str, samplerate: int = 8000, channels: int = 1, seconds: float = 0.5) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, _tone(samplerate, channels, seconds), samplerate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _stem_writer(fmt: str, samplerate: int = 44100, seconds: float = 0.4) -> bytes:
    """MP3 (LAME) and Ogg Opus as the project's own encoders write them."""
    from musicsep.model.audio import FORMATS, StemWriter

    with tempfile.TemporaryDirectory(prefix="fuzz-seed-") as folder:
        path = Path(folder) / f"seed.{FORMATS[fmt].extension}"
        with StemWriter(path, fmt, samplerate, channels=2, bitrate=64) as writer:
            writer.write(_tone(samplerate, 2, seconds).T)
        return path.read_bytes()


@lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    """Name -> bytes of one small real file per container the sniffer admits and we can write."""
    made = {
        "wav16": _soundfile("WAV", "PCM_16"),
        "wav_float_stereo": _soundfile("WAV", "FLOAT", 8000, 2, 0.25),
        "wavex_u8": _soundfile("WAVEX", "PCM_U8", 11025, 1, 0.5),
        "rf64": _soundfile("RF64", "PCM_24", 8000, 1, 0.25),
        "w64": _soundfile("W64", "PCM_16", 8000, 1, 0.25),
        "aiff": _soundfile("AIFF", "PCM_16", 8000, 1, 0.5),
        "au": _soundfile("AU", "ULAW", 8000, 1, 0.5),
        "caf": _soundfile("CAF", "ALAC_16", 8000, 1, 0.5),
        "flac": _soundfile("FLAC", "PCM_16", 16000, 2, 0.5),
        "ogg_vorbis": _soundfile("OGG", "VORBIS", 22050, 2, 0.5),
        "mp3": _stem_writer("mp3"),
        "ogg_opus": _stem_writer("ogg"),
    }
    return {name: data[:FRONT_BYTES] for name, data in made.items()}


def wav_bytes(samplerate: int = 8000, channels: int = 1, seconds: float = 0.05) -> bytes:
    """A tiny valid WAV: the upload harness's file when it should pass the sniffer."""
    return _soundfile("WAV", "PCM_16", samplerate, channels, seconds)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with up to eight damages, most of them in the first 64 bytes where headers live."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not out:
            break
        where = draw(st.one_of(st.integers(0, min(63, len(out) - 1)), st.integers(0, len(out) - 1)))
        action = draw(st.sampled_from(("flip", "byte", "u16", "u32", "insert", "delete", "truncate")))
        if action == "flip":
            out[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "byte":
            out[where] = draw(st.integers(0, 255))
        elif action in ("u16", "u32"):
            value = draw(st.sampled_from(_INTERESTING))
            packed = struct.pack("<I", value) if action == "u32" else struct.pack("<H", value & 0xFFFF)
            if draw(st.booleans()):
                packed = packed[::-1]  # big-endian containers (AIFF, AU, CAF, FLAC)
            out[where : where + len(packed)] = packed
        elif action == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=64))
        elif action == "delete":
            del out[where : where + draw(st.integers(1, 256))]
        else:
            del out[max(1, where) :]
    return bytes(out[:FRONT_BYTES])


def front_bytes() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, a magic number followed by garbage, or a mutated real file."""
    magics = st.sampled_from(
        [
            b"RIFF\0\0\0\0WAVE",
            b"fLaC",
            b"OggS",
            b"ID3",
            b"\xff\xfb\x90",
            b"FORM\0\0\0\0AIFF",
            b"\x1a\x45\xdf\xa3",
            b"\0\0\0\x20ftyp",
            b"caff",
            b".snd",
            b"wvpk",
            b"\xff\xf1",
        ]
    )
    return st.one_of(
        st.binary(max_size=4096),
        st.builds(lambda magic, rest: magic + rest, magics, st.binary(max_size=4096)),
        st.sampled_from(sorted(seeds())).flatmap(lambda name: mutated(seeds()[name])),
    )
