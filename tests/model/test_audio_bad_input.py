"""Bad inputs never crash or hang the decoder: each ends in a typed error a user can read.

Every case is made in tmp_path. The errors' classes are what the CLI maps to exit status 3 and
the server to 415/422, so the class is asserted exactly; the message must not leak the path.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from musicsep.model.audio import decode_blocks, probe
from musicsep.model.errors import AudioTooLong, InvalidAudio, MusicsepError, UnsupportedFormat


def wav_header(rate: int = 44100, channels: int = 2, bits: int = 16, data_len: int = 0, tag: int = 1) -> bytes:
    """A canonical 44-byte WAV header that claims whatever we like."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    riff_len = 4 + 8 + len(fmt) + 8 + data_len
    return (
        b"RIFF"
        + struct.pack("<I", riff_len & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
    )


def float_wav(values: np.ndarray) -> bytes:
    data = np.repeat(np.asarray(values, dtype="<f4"), 2).tobytes()  # stereo, same in both channels
    return wav_header(bits=32, tag=3, data_len=len(data)) + data


def image(path: Path, codec: str) -> Path:
    """A 16x16 still image encoded by FFmpeg (png or mjpeg)."""
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream(codec, rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


Maker = Callable[[Path, SimpleNamespace], Path]


def bytes_file(content: bytes, name: str = "upload.bin") -> Maker:
    def make(tmp_path: Path, kit: SimpleNamespace) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return make


def truncated(name: str, suffix: str, keep: int) -> Maker:
    """A valid file of format `name` cut after `keep` bytes (inside its header)."""

    def make(tmp_path: Path, kit: SimpleNamespace) -> Path:
        whole = kit.write(tmp_path / f"whole{suffix}", name, kit.tones(0.3))
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(whole.read_bytes()[:keep])
        return path

    return make


def folder(tmp_path: Path, kit: SimpleNamespace) -> Path:
    (tmp_path / "a_folder.wav").mkdir()
    return tmp_path / "a_folder.wav"


def fifo(tmp_path: Path, kit: SimpleNamespace) -> Path:
    os.mkfifo(tmp_path / "pipe.wav")  # opening it for reading would block forever
    return tmp_path / "pipe.wav"


def missing(tmp_path: Path, kit: SimpleNamespace) -> Path:
    return tmp_path / "does_not_exist.wav"


def video_only(container: str, codec: str, suffix: str) -> Maker:
    def make(tmp_path: Path, kit: SimpleNamespace) -> Path:
        return kit.pyav_write(tmp_path / f"video{suffix}", container, None, video_codec=codec)

    return make


def png(tmp_path: Path, kit: SimpleNamespace) -> Path:
    return image(tmp_path / "cover.png", "png")


def jpeg(tmp_path: Path, kit: SimpleNamespace) -> Path:
    return image(tmp_path / "cover.jpg", "mjpeg")


def too_long(tmp_path: Path, kit: SimpleNamespace) -> Path:
    return kit.write(tmp_path / "long.flac", "flac", kit.tones(3.0))


_RNG = np.random.default_rng(7)
_NOISE = _RNG.bytes(20000)
_NAN = np.where(np.arange(3000) == 2222, np.nan, 0.1)
_INF = np.where(np.arange(3000) == 17, -np.inf, 0.1)

#: (case id, how to make it, expected error, whether probe() already refuses it)
CASES: list[tuple[str, Maker, type[MusicsepError], bool]] = [
    ("empty file", bytes_file(b""), InvalidAudio, True),
    ("missing file", missing, InvalidAudio, True),
    ("a folder", folder, InvalidAudio, True),
    ("a named pipe", fifo, InvalidAudio, True),
    ("plain text", bytes_file(b"Yesterday, all my troubles seemed so far away.\n" * 40), UnsupportedFormat, True),
    ("playlist naming a URL", bytes_file(b"#EXTM3U\n#EXTINF:1,x\nhttp://127.0.0.1:9/x.mp3\n"), UnsupportedFormat, True),
    ("PNG image", png, UnsupportedFormat, True),
    ("JPEG image", jpeg, UnsupportedFormat, True),
    ("random bytes", bytes_file(_NOISE), UnsupportedFormat, True),
    ("wav cut inside its header", truncated("wav16", ".wav", 30), InvalidAudio, True),
    ("flac cut inside its header", truncated("flac", ".flac", 60), InvalidAudio, True),
    ("m4a cut before its index", truncated("m4a_aac", ".m4a", 2000), InvalidAudio, True),
    ("zero-length audio", bytes_file(wav_header()), InvalidAudio, False),
    ("huge claimed length, no data", bytes_file(wav_header(data_len=0x7FFF0000)), InvalidAudio, False),
    ("NaN samples", bytes_file(float_wav(_NAN)), InvalidAudio, False),
    ("infinite samples", bytes_file(float_wav(_INF)), InvalidAudio, False),
    ("sample rate 1 Hz", bytes_file(wav_header(rate=1, data_len=4000) + bytes(4000)), InvalidAudio, True),
    ("sample rate 10 MHz", bytes_file(wav_header(rate=10_000_000, data_len=4000) + bytes(4000)), InvalidAudio, True),
    ("zero channels", bytes_file(wav_header(channels=0, data_len=4000) + bytes(4000)), InvalidAudio, True),
    # An unknown WAV format tag once left PyAV without a codec context (AttributeError, a 500).
    ("WAV format tag 0x1234", bytes_file(wav_header(tag=0x1234, data_len=4000) + bytes(4000)), UnsupportedFormat, True),
    # More channels than any layout FFmpeg can down-mix once failed the job as internal_error.
    (
        "255 channels",
        bytes_file(wav_header(channels=255, data_len=255 * 2 * 100) + bytes(255 * 2 * 100)),
        InvalidAudio,
        True,
    ),
    (
        "9 channels in no standard layout",
        bytes_file(wav_header(channels=9, data_len=9 * 2 * 100) + bytes(9 * 2 * 100)),
        InvalidAudio,
        False,
    ),
    ("video-only mkv", video_only("matroska", "mpeg4", ".mkv"), InvalidAudio, True),
    ("video-only mp4", video_only("mp4", "libx264", ".mp4"), InvalidAudio, True),
    ("WAV magic then noise", bytes_file(b"RIFF\x00\x10\x00\x00WAVE" + _NOISE), InvalidAudio, True),
    ("Ogg magic then noise", bytes_file(b"OggS" + _NOISE), InvalidAudio, True),
    ("FLAC magic then noise", bytes_file(b"fLaC" + _NOISE), InvalidAudio, True),
    ("MP3 frame header then noise", bytes_file(b"\xff\xfb\x90\x00" + _NOISE), InvalidAudio, True),
    ("MP4 ftyp then noise", bytes_file(b"\x00\x00\x00\x20ftypisom" + _NOISE), InvalidAudio, True),
    ("EBML magic then noise", bytes_file(b"\x1a\x45\xdf\xa3" + _NOISE), InvalidAudio, True),
    ("longer than the limit", too_long, AudioTooLong, False),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("make", "expected"), [pytest.param(m, e, id=i) for i, m, e, _ in CASES])
def test_bad_input_gets_typed_error_with_clean_message(tmp_path: Path, audio_kit, make, expected) -> None:
    path = make(tmp_path, audio_kit)
    with pytest.raises(MusicsepError) as caught:
        for _ in decode_blocks(path, samplerate=44100, max_duration_s=2.0):
            pass
    error = caught.value
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    assert error.exit_code == 3
    assert error.message and error.message.endswith(".")
    assert str(tmp_path) not in error.message and path.name not in error.message


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("make", "expected"), [pytest.param(m, e, id=i) for i, m, e, at_probe in CASES if at_probe])
def test_probe_refuses_bad_headers(tmp_path: Path, audio_kit, make, expected) -> None:
    with pytest.raises(expected):
        probe(make(tmp_path, audio_kit))


@pytest.mark.parametrize("channels", [9, 255])
def test_too_many_channels_says_what_the_limit_is(tmp_path: Path, channels: int) -> None:
    """A 255-channel WAV once failed its job with `internal_error`; now the refusal says why."""
    path = tmp_path / "many.wav"
    path.write_bytes(wav_header(channels=channels, data_len=channels * 2 * 100) + bytes(channels * 2 * 100))
    with pytest.raises(InvalidAudio) as caught:
        for _ in decode_blocks(path, samplerate=44100):
            pass
    assert f"{channels} channels" in caught.value.message
    assert "24" in caught.value.message


def test_errors_stop_decoding_before_any_bad_block_is_yielded(tmp_path: Path, audio_kit) -> None:
    """NaN in the middle of a long file: blocks before it are fine, the bad one is never handed out."""
    values = np.full(50_000, 0.1)
    values[30_000] = np.nan
    path = bytes_file(float_wav(values))(tmp_path, audio_kit)
    yielded = []
    with pytest.raises(InvalidAudio):
        for block in decode_blocks(path, samplerate=44100, block_frames=10_000):
            yielded.append(block)
    assert all(np.isfinite(block).all() for block in yielded)
    assert sum(block.shape[1] for block in yielded) <= 30_000


def test_cli_exits_3_on_every_bad_input_and_names_each(tmp_path: Path, audio_kit) -> None:
    """The whole table through `musicsep separate` in one run: exit 3, one clear line per file."""
    import os
    import subprocess
    import sys

    paths = []
    for index, (_, make, _, _) in enumerate(CASES):
        folder_for_case = tmp_path / f"case{index:02d}"
        folder_for_case.mkdir()
        paths.append(make(folder_for_case, audio_kit))
    env = {**os.environ, "MUSICSEP_MAX_DURATION_S": "2", "MUSICSEP_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "musicsep.cli",
        "separate",
        *map(str, paths),
        "-m",
        "dsp",
        "-o",
        str(tmp_path / "out"),
        "--json",
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 3, out.stderr
    assert out.stdout == ""
    lines = [line for line in out.stderr.splitlines() if line.startswith("musicsep: ")]
    assert len(lines) == len(CASES), out.stderr
    assert "Traceback" not in out.stderr
