"""`musicsep submit`: send a file to a running server, show its progress, download the stems."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from musicsep.protocol import ENSEMBLE_METHODS, OUTPUT_FORMATS, PRIORITY_MAX, PRIORITY_MIN


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="separate a file on a musicsep server and download the stems",
        description="Upload FILE to a musicsep server (or give an http(s) URL, which the server "
        "downloads: public addresses only), follow its progress and save the stems.",
    )
    parser.add_argument("file", help="an audio file, or an http(s) URL of one")
    parser.add_argument(
        "--server",
        default=os.environ.get("MUSICSEP_SERVER", "http://127.0.0.1:8000"),
        help="server URL (default $MUSICSEP_SERVER or http://127.0.0.1:8000)",
    )
    parser.add_argument("--api-key", default=os.environ.get("MUSICSEP_API_KEY"), help="default $MUSICSEP_API_KEY")
    parser.add_argument("--model")
    parser.add_argument("--stems", help="comma-separated, e.g. vocals,drums")
    parser.add_argument("--two-stems", help="a stem and its complement, e.g. vocals")
    parser.add_argument("--format", choices=OUTPUT_FORMATS)
    parser.add_argument(
        "--ensemble",
        metavar="MODEL,MODEL[,...]",
        help="combine the stems of 2 to 4 models (comma-separated) instead of one --model",
    )
    parser.add_argument("--ensemble-method", choices=ENSEMBLE_METHODS, help="how an ensemble combines (avg_wave)")
    parser.add_argument("--ensemble-weights", metavar="W,W[,...]", help="one weight per ensemble model")
    parser.add_argument(
        "--priority", type=int, choices=range(PRIORITY_MIN, PRIORITY_MAX + 1), metavar=f"{PRIORITY_MIN}-{PRIORITY_MAX}"
    )
    parser.add_argument("--out", type=Path, default=Path("separated"), help="folder for the stems")
    parser.add_argument("--no-download", action="store_true", help="print the links instead of downloading")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from musicsep.clients import Client, Completed, Failed, Progress, Queued, ServerError

    options = {
        "model": args.model,
        "stems": args.stems,
        "two_stems": args.two_stems,
        "format": args.format,
        "ensemble": args.ensemble,
        "ensemble_method": args.ensemble_method,
        "ensemble_weights": args.ensemble_weights,
        "priority": args.priority,
    }
    with Client(args.server, api_key=args.api_key) as client:
        try:
            if args.file.startswith(("http://", "https://")):
                accepted = client.submit(audio_url=args.file, **options)
            else:
                accepted = client.submit(Path(args.file), **options)
            print(f"job {accepted['job_id']}", file=sys.stderr)
            for event in client.events(accepted["events_url"]):
                if isinstance(event, Queued) and event.position:
                    print(f"queued, position {event.position}", file=sys.stderr)
                elif isinstance(event, Progress):
                    print(f"\r{event.stage:>8} {event.percent:5.1f}%", end="", file=sys.stderr, flush=True)
                elif isinstance(event, Failed):
                    print(f"\nfailed ({event.code}): {event.message}", file=sys.stderr)
                    return 1
                elif isinstance(event, Completed):
                    print(file=sys.stderr)
                    return _deliver(client, event, args)
                elif event.terminal:
                    print(f"\n{event.type}: {event.raw}", file=sys.stderr)
                    return 1
        except ServerError as exc:
            print(f"musicsep submit: {exc.message} ({exc.code})", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"musicsep submit: {exc}", file=sys.stderr)
            return 1
    print("musicsep submit: the event stream ended early", file=sys.stderr)
    return 1


def _deliver(client, completed, args: argparse.Namespace) -> int:
    from musicsep.clients.common import absolute

    if args.no_download:
        for name, info in completed.stems.items():
            print(f"{name}\t{absolute(client.base_url, info['url'])}")  # S3 links are absolute already
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path in client.download_all(completed, args.out).values():
        print(path)
    return 0
