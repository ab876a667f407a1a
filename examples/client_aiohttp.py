"""Separate a song from asyncio with `aiohttp`, streaming progress from POST /api/v1/separate.

    python examples/client_aiohttp.py song.mp3 --server http://127.0.0.1:8000 --out stems/

The response of POST /api/v1/separate *is* the event stream (ask for `text/event-stream`); if
this script stops reading before the end, the server cancels the job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp

EXTENSIONS = {"wav16": "wav", "wav24": "wav", "float32": "wav", "flac": "flac", "mp3": "mp3", "ogg": "ogg"}


async def events(response: aiohttp.ClientResponse):
    """Yield (event type, data) from an SSE response, one blank-line-separated block at a time."""
    fields: dict[str, str] = {}
    async for raw in response.content:  # aiohttp yields the body line by line
        line = raw.decode().rstrip("\r\n")
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")
        elif "data" in fields:
            yield fields.get("event", "message"), json.loads(fields["data"])
            fields = {}


async def separate(song: Path, server: str, out: Path, api_key: str | None, stems: str | None) -> int:
    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    result = None
    form = aiohttp.FormData()
    if stems:
        form.add_field("stems", stems)
    async with aiohttp.ClientSession(headers={k: v for k, v in headers.items() if k != "Accept"}) as session:
        with song.open("rb") as handle:
            form.add_field("file", handle, filename=song.name)
            async with session.post(f"{server}/api/v1/separate", data=form, headers=headers) as response:
                if response.status != 200:
                    print("refused:", (await response.json())["error"]["message"], file=sys.stderr)
                    return 1
                async for event, data in events(response):
                    if event == "progress":
                        print(f"\r{data['stage']:>8} {data['percent']:5.1f}%", end="", flush=True)
                    elif event in ("failed", "cancelled"):
                        print(f"\n{event}:", data.get("message") or data.get("reason"), file=sys.stderr)
                        return 1
                    elif event == "completed":
                        print()
                        result = data["stems"]
                        break
        if result is None:
            print("\nthe stream ended before the job did", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        for name, stem in result.items():
            target = out / f"{name}.{EXTENSIONS[stem['format']]}"
            async with session.get(server + stem["url"]) as download:
                download.raise_for_status()
                with target.open("wb") as file:
                    async for chunk in download.content.iter_chunked(1 << 20):
                        file.write(chunk)
            print("saved", target)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", type=Path)
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key")
    parser.add_argument("--stems", help="e.g. vocals,drums")
    parser.add_argument("--out", type=Path, default=Path("stems"))
    args = parser.parse_args()
    try:
        return asyncio.run(separate(args.song, args.server, args.out, args.api_key, args.stems))
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as error:
        print(f"cannot reach {args.server}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
