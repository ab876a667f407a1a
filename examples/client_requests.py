"""Separate a song with nothing but `requests`: upload, follow the progress stream, download.

    python examples/client_requests.py song.mp3 --server http://127.0.0.1:8000 --out stems/

The server's event stream is plain Server-Sent Events: `id:`, `event:` and `data:` lines, a blank
line between events. (The `musicsep.clients` package does all of this, with reconnection.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests

EXTENSIONS = {"wav16": "wav", "wav24": "wav", "float32": "wav", "flac": "flac", "mp3": "mp3", "ogg": "ogg"}


def follow(session: requests.Session, url: str):
    """Yield (event type, data) from an SSE stream until the job's terminal event."""
    fields: dict[str, str] = {}
    with session.get(url, stream=True, headers={"Accept": "text/event-stream"}, timeout=(10, 60)) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.lstrip(" ")
                continue
            if "data" in fields:
                event, data = fields.get("event", "message"), json.loads(fields["data"])
                yield event, data
                if event in ("completed", "failed", "cancelled"):
                    return
            fields = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", type=Path)
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key")
    parser.add_argument("--stems", help="e.g. vocals,drums")
    parser.add_argument("--out", type=Path, default=Path("stems"))
    args = parser.parse_args()
    try:
        return separate(args)
    except (requests.ConnectionError, requests.Timeout) as error:
        print(f"cannot reach {args.server}: {error}", file=sys.stderr)
        return 1


def separate(args: argparse.Namespace) -> int:
    """Upload, follow the events, download the stems; the exit status."""
    session = requests.Session()
    if args.api_key:
        session.headers["Authorization"] = f"Bearer {args.api_key}"
    fields = {"stems": args.stems} if args.stems else {}
    with args.song.open("rb") as song:
        response = session.post(f"{args.server}/api/v1/jobs", files={"file": song}, data=fields, timeout=300)
    if response.status_code != 202:
        print("refused:", response.json()["error"]["message"], file=sys.stderr)
        return 1
    job = response.json()
    print("job", job["job_id"], "queued at position", job["position"])

    for event, data in follow(session, args.server + job["events_url"]):
        if event == "progress":
            print(f"\r{data['stage']:>8} {data['percent']:5.1f}%", end="", flush=True)
        elif event == "failed":
            print("\nfailed:", data["message"], file=sys.stderr)
            return 1
        elif event == "cancelled":
            print("\ncancelled:", data["reason"], file=sys.stderr)
            return 1
        elif event == "completed":
            print()
            args.out.mkdir(parents=True, exist_ok=True)
            for name, stem in data["stems"].items():
                target = args.out / f"{name}.{EXTENSIONS[stem['format']]}"
                with session.get(args.server + stem["url"], stream=True, timeout=(10, 300)) as download:
                    download.raise_for_status()
                    with target.open("wb") as out:
                        for chunk in download.iter_content(1 << 20):
                            out.write(chunk)
                print("saved", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
