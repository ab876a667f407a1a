"""Separate a song with the `musicsep.clients` library: submit, follow the typed events, download.

    python examples/client_library.py song.mp3 --server http://127.0.0.1:8000 --title "My Song" --out stems/

The library does what the other two examples spell out by hand (SSE parsing, reconnecting with
Last-Event-ID, naming the downloads) and raises one error type for every failure: `ServerError`
for the server's error envelope, `ConnectionFailed` when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musicsep.clients import Client, ClientError, Completed, Failed, Progress, Started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", type=Path)
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key")
    parser.add_argument("--stems", help="e.g. vocals,drums")
    parser.add_argument("--title", help="the job's title; the stems are named after it")
    parser.add_argument("--out", type=Path, default=Path("stems"))
    args = parser.parse_args()

    try:
        with Client(args.server, api_key=args.api_key) as client:
            job = client.submit(args.song, stems=args.stems, title=args.title)
            for event in client.events(job["job_id"]):
                if isinstance(event, Started):
                    print(f"{event.model} on {event.device}", file=sys.stderr)
                    if event.fallback_reason:
                        print(f"(not {event.requested_model}: {event.fallback_reason})", file=sys.stderr)
                elif isinstance(event, Progress):
                    print(f"\r{event.stage:>8} {event.percent:5.1f}%", end="", file=sys.stderr, flush=True)
                elif isinstance(event, Failed):
                    print(f"\nfailed ({event.code}): {event.message}", file=sys.stderr)
                    return 1
                elif isinstance(event, Completed):
                    print(file=sys.stderr)
                    for path in client.download_all(event, args.out).values():  # creates args.out
                        print("saved", path)
                    return 0
                elif event.terminal:
                    print(f"\n{event.type}", file=sys.stderr)
                    return 1
    except ClientError as error:
        print(error, file=sys.stderr)
        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
