"""`musicsep worker`: a Celery worker over Redis for the scale-out mode (docs/deploy.md).

Run one per GPU beside any number of `musicsep serve` processes with the same MUSICSEP_REDIS_URL,
MUSICSEP_DATA_DIR (shared) and MUSICSEP_SIGNING_KEY.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a scale-out worker (Celery over Redis): one job at a time on one device",
        description="Run a musicsep worker. Settings come from MUSICSEP_* variables (MUSICSEP_REDIS_URL, "
        "MUSICSEP_DATA_DIR, MUSICSEP_SIGNING_KEY ...), then these flags.",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="device (default: the setting)")
    parser.add_argument("--model", action="append", default=[], help="model to load before taking jobs (repeat)")
    parser.add_argument("--name", help="worker name (default musicsep@HOST)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from musicsep.config import describe_invalid, get_settings
    from musicsep.logging import setup_logging

    overrides = {"device": args.device} if args.device else {}
    try:
        settings = get_settings(**overrides)
    except ValidationError as exc:
        print(f"musicsep worker: invalid settings:\n{describe_invalid(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.log_json)
    try:
        from musicsep.scaleout.worker import build_worker, run_worker
    except ModuleNotFoundError as exc:
        print(
            f"musicsep worker: {exc.name} is missing; install the scale-out extra: pip install 'musicsep[scaleout]'",
            file=sys.stderr,
        )
        return 2
    from musicsep.service.signing import SigningKeyRefused

    models = args.model or settings.preload
    try:
        worker = build_worker(settings, models)
    except SigningKeyRefused as exc:
        print(f"musicsep worker: {exc}", file=sys.stderr)
        return 2
    run_worker(worker, args.name)
    return 0
