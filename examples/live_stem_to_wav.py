"""Write one stem to a WAV file while the server is still separating the song.

    python examples/live_stem_to_wav.py song.mp3 --stem vocals --out vocals.wav --server http://127.0.0.1:8000

The job is submitted, then `Client.stream_stem` yields the stem's final samples one segment
(65536 frames) at a time as the engine finishes them, and each is appended to the file at once:
the first seconds are on disk long before the job ends. With `soundfile` installed the file is
float32, the live samples exactly (the server's `clip none` + `float32` make them the final
stem bit for bit); without it the standard library's `wave` writes it, which cannot write float:
16-bit PCM then, each sample clamped to ±1. A cancelled or failed job ends the script with the
server's reason (exit 1) and the part written so far stays in the file.
"""

from __future__ import annotations

import argparse
import sys
import wave
from array import array
from pathlib import Path

from musicsep.clients import Client, ClientError, LiveBlock


class Float32Writer:
    """soundfile's float32 WAV, appended block by block."""

    def __init__(self, path: Path, samplerate: int, channels: int) -> None:
        import soundfile

        self._file = soundfile.SoundFile(str(path), "w", samplerate, channels, subtype="FLOAT")

    def write(self, block: LiveBlock) -> None:
        self._file.buffer_write(block.samples.tobytes(), dtype="float32")

    def close(self) -> None:
        self._file.close()


class Pcm16Writer:
    """The standard library's `wave`: 16-bit PCM (it has no float format)."""

    def __init__(self, path: Path, samplerate: int, channels: int) -> None:
        self._file = wave.open(str(path), "wb")
        self._file.setnchannels(channels)
        self._file.setsampwidth(2)
        self._file.setframerate(samplerate)

    def write(self, block: LiveBlock) -> None:
        pcm = array("h", (int(max(-1.0, min(1.0, x)) * 32767) for x in block.samples))
        if sys.byteorder == "big":
            pcm.byteswap()
        self._file.writeframes(pcm.tobytes())

    def close(self) -> None:
        self._file.close()


def open_writer(path: Path, samplerate: int, channels: int) -> Float32Writer | Pcm16Writer:
    try:
        return Float32Writer(path, samplerate, channels)
    except ImportError:
        return Pcm16Writer(path, samplerate, channels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path)
    parser.add_argument("--stem", default="vocals")
    parser.add_argument("--out", type=Path, default=Path("live.wav"))
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key")
    args = parser.parse_args()
    writer = None
    try:
        with Client(args.server, api_key=args.api_key) as client:
            job = client.submit(args.song, format="float32", clip="none", analyze=False)
            print(f"job {job['job_id']}: writing {args.stem} to {args.out} as it is separated", flush=True)
            written = 0
            for block in client.stream_stem(job["job_id"], args.stem):
                if writer is None:
                    writer = open_writer(args.out, block.samplerate, block.channels)
                writer.write(block)
                written += block.frames
                print(f"{written / block.samplerate:7.1f} s written", flush=True)
    except ClientError as error:
        print(str(error), file=sys.stderr)
        return 1
    finally:
        if writer is not None:
            writer.close()
    print(f"done: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
