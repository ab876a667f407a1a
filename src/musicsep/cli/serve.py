"""`musicsep serve`: the HTTP server on the embedded default (no Redis, no S3).

One uvicorn process on purpose: several workers would each load the model onto the same GPU.
The port is bound before anything else starts, so a busy one is refused at once, and the URLs
are printed only once the server accepts connections on it.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

    from musicsep.config import Settings

EXIT_OK, EXIT_USAGE, EXIT_STARTUP_FAILED, EXIT_PORT_IN_USE = 0, 2, 3, 5

EXIT_CODES = f"""exit status: {EXIT_OK} after Ctrl+C (SIGTERM: the graceful stop, then the signal's own status);
{EXIT_USAGE} invalid settings or options, or an address this machine cannot listen on; {EXIT_STARTUP_FAILED} the
application failed to start (see the log); {EXIT_PORT_IN_USE} the port is in use by another program."""

#: uvicorn options (--config) that `serve` decides itself, and why: each is refused in words.
DECIDED_HERE = {
    "http": "the server sets its own HTTP protocol (uvicorn's with header and body timeouts, api/http_protocol.py)",
    "host": "the address is --host (MUSICSEP_HOST)",
    "port": "the port is --port (MUSICSEP_PORT)",
    "uds": "the server listens on --host and --port",
    "fd": "the server listens on --host and --port",
    "workers": "the server is one process on purpose (each worker would load the model)",
    "reload": "the server is one process on purpose (each worker would load the model)",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP server (SSE progress, job queue, downloads)",
        description="Run the musicsep server. Settings come from MUSICSEP_* variables, the TOML file in "
        "MUSICSEP_CONFIG, then these flags (highest).",
        epilog=EXIT_CODES,
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
        return EXIT_USAGE
    try:
        _check_job_database(settings)  # first: a refused data dir is left exactly as it was
    except DatabaseRefused as exc:
        print(f"musicsep serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        signing_key(settings.signing_key, settings.data_dir)  # refused here, in words, not in a traceback
    except SigningKeyRefused as exc:
        print(f"musicsep serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.preload and settings.default_model not in settings.preload:
        settings.preload.append(settings.default_model)
    setup_logging(settings.log_json)
    if settings.exposed_without_auth():
        logger.warning(
            "listening on {} with no API keys: anyone who can reach it can use it (set MUSICSEP_API_KEYS)",
            settings.host,
        )
    options = json.loads(args.config.read_text()) if args.config else {}
    decided = sorted(DECIDED_HERE.keys() & options.keys())
    for key in decided:
        print(f"musicsep serve: remove '{key}' from the uvicorn options: {DECIDED_HERE[key]}", file=sys.stderr)
    if decided:
        return EXIT_USAGE
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        print(f"musicsep serve: {_refusal(settings.host, settings.port, exc)}", file=sys.stderr)
        return EXIT_PORT_IN_USE if exc.errno == errno.EADDRINUSE else EXIT_USAGE
    logger.info(
        "open files limit: {} (each idle or slow connection holds one until its timeout)", _raise_open_files_limit()
    )
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, http=protocol_for(settings), **options
    )
    return _serve(config, sock, _url(settings.host, sock.getsockname()[1]))


def _bind(host: str, port: int) -> socket.socket:
    """The server's address, bound but not yet listening (connections are refused until the
    server is ready). Hand-written because uvicorn's Config.bind_socket exits the process on a
    failure, with the status of every other startup failure; the socket is the one it makes."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _refusal(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use by another program: stop it, or choose another with --port"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc} (check --host and --port)"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(config: uvicorn.Config, sock: socket.socket, url: str) -> int:
    """uvicorn on `sock`, announcing the page and the API docs at `url` once it accepts
    connections: after the application's startup (models preloaded, jobs recovered), never before."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"musicsep serving on {url} (web page: {url}/, API docs: {url}/docs)", flush=True)

    server = AnnouncingServer(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return EXIT_OK if server.started else EXIT_STARTUP_FAILED


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
