"""`musicsep serve`: the HTTP server on the embedded default (no Redis, no S3).

One uvicorn process on purpose: several workers would each load the model onto the same GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from musicsep.config import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP server (SSE progress, job queue, downloads)",
        description="Run the musicsep server. Settings come from MUSICSEP_* variables, the TOML file in "
        "MUSICSEP_CONFIG, then these flags (highest).",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--config", type=Path, help="uvicorn options as JSON (e.g. uvicorn_config.json)")
    parser.add_argument("--model", help="default model for requests that name none")
    parser.add_argument("--preload", action="store_true", help="load the default model before serving")
    parser.add_argument("--max-concurrent", type=int, help="separations running at once (default 1)")
    parser.add_argument("--queue-size", type=int, help="jobs waiting at most before 503 (default 16)")
    parser.add_argument("--data-dir", type=Path, help="jobs database and results (default ./data)")
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    chosen = {
        "host": args.host,
        "port": args.port,
        "default_model": args.model,
        "max_concurrent": args.max_concurrent,
        "queue_size": args.queue_size,
        "data_dir": args.data_dir,
    }
    return {key: value for key, value in chosen.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from loguru import logger
    from pydantic import ValidationError

    from musicsep.api.http_protocol import protocol_for
    from musicsep.composition import create_app
    from musicsep.config import describe_invalid, get_settings
    from musicsep.logging import setup_logging
    from musicsep.service.database_check import DatabaseRefused
    from musicsep.service.signing import SigningKeyRefused, signing_key

    try:
        settings = get_settings(**_overrides(args))
    except ValidationError as exc:
        print(f"musicsep serve: invalid settings:\n{describe_invalid(exc)}", file=sys.stderr)
        return 2
    try:
        _check_job_database(settings)  # first: a refused data dir is left exactly as it was
    except DatabaseRefused as exc:
        print(f"musicsep serve: {exc}", file=sys.stderr)
        return 2
    try:
        signing_key(settings.signing_key, settings.data_dir)  # refused here, in words, not in a traceback
    except SigningKeyRefused as exc:
        print(f"musicsep serve: {exc}", file=sys.stderr)
        return 2
    if args.preload and settings.default_model not in settings.preload:
        settings.preload.append(settings.default_model)
    setup_logging(settings.log_json)
    if settings.exposed_without_auth():
        logger.warning(
            "listening on {} with no API keys: anyone who can reach it can use it (set MUSICSEP_API_KEYS)",
            settings.host,
        )
    options = json.loads(args.config.read_text()) if args.config else {}
    if "http" in options:
        print(
            "musicsep serve: remove 'http' from the uvicorn options: the server sets its own HTTP protocol "
            "(uvicorn's with header and body timeouts, api/http_protocol.py)",
            file=sys.stderr,
        )
        return 2
    logger.info(
        "open files limit: {} (each idle or slow connection holds one until its timeout)", _raise_open_files_limit()
    )
    print(f"musicsep serving on http://{settings.host}:{settings.port} (API docs: /docs)", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=protocol_for(settings),
        **options,
    )
    return 0


def _raise_open_files_limit() -> int:
    """The soft RLIMIT_NOFILE up to the hard one: every connection holds a descriptor until it
    ends or times out, and the common soft default (1024) would make accept() fail while a few
    thousand idle sockets wait for their header timeout. Returns the soft limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # e.g. macOS caps it below an unlimited hard limit
        return soft
    return wanted


def _check_job_database(settings: Settings) -> None:
    """The embedded job database, opened once before serving: refused in words, not a traceback."""
    if settings.queue == "celery":
        return  # jobs live in Redis
    from musicsep.service.sqlite_store import SqliteStore

    SqliteStore(settings.data_dir / "musicsep.sqlite3", job_folders=settings.data_dir / "jobs").close()
