"""`musicsep submit`: send a file to a running server, show its progress, download the stems.

Every failure is one line on stderr and an exit status a script can act on (`EXIT_CODES`);
Ctrl-C cancels the job this command created (POST /api/v1/jobs/{id}/cancel, which never deletes:
a job that completes meanwhile keeps its stems). A job it did not create
(an idempotency key's replay of an earlier request) is someone's: it is cancelled only when the
user says so at the prompt, and left running when stdin is not a terminal.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from musicsep.protocol import ENSEMBLE_METHODS, OUTPUT_FORMATS, PRIORITY_MAX, PRIORITY_MIN

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_MODEL, EXIT_DISK_FULL = 0, 1, 2, 3, 4, 5
EXIT_UNREACHABLE, EXIT_INTERRUPTED = 6, 130

EXIT_CODES = (
    "Exit status: 0 stems saved (or links printed); 1 the job failed, or was cancelled, on the server for "
    "another reason; 2 the server refused the options or the API key; 3 bad input (no such file, a format "
    "or URL the server refuses, too long); 4 model unavailable; 5 disk full (here or on the server); "
    "6 server unreachable or busy (refused, timed out, 503/429): try again later; 130 interrupted (Ctrl-C)."
)

#: The error code of the server's envelope or of a `failed` event -> exit status.
EXIT_FOR_CODE = {
    "invalid_options": EXIT_USAGE,
    "invalid_request": EXIT_USAGE,
    "unauthorized": EXIT_USAGE,
    "idempotency_conflict": EXIT_USAGE,
    "invalid_audio": EXIT_BAD_INPUT,
    "unsupported_format": EXIT_BAD_INPUT,
    "audio_too_long": EXIT_BAD_INPUT,
    "payload_too_large": EXIT_BAD_INPUT,
    "url_refused": EXIT_BAD_INPUT,
    "url_fetch_failed": EXIT_BAD_INPUT,
    "model_unavailable": EXIT_MODEL,
    "device_unavailable": EXIT_MODEL,
    "storage_full": EXIT_DISK_FULL,
}
#: HTTP statuses that mean "later" (queue full, busy, too many streams) or "not allowed".
EXIT_FOR_STATUS = {503: EXIT_UNREACHABLE, 429: EXIT_UNREACHABLE, 401: EXIT_USAGE, 403: EXIT_USAGE}


def exit_for(code: str, status: int | None = None) -> int:
    """The exit status of a server's refusal or a job's failure."""
    return EXIT_FOR_CODE.get(code) or EXIT_FOR_STATUS.get(status or 0) or EXIT_FAILED


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="separate a file on a musicsep server and download the stems",
        description="Upload FILE to a musicsep server (or give an http(s) URL, which the server "
        "downloads: public addresses only), follow its progress and save the stems. Ctrl-C cancels "
        "the job on the server (one this command did not create is cancelled only if you say so).",
        epilog=EXIT_CODES,
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
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same KEY and file again gives back the first job instead of a second one (safe to rerun)",
    )
    parser.add_argument("--out", type=Path, default=Path("separated"), help="folder for the stems")
    parser.add_argument("--no-download", action="store_true", help="print the links instead of downloading")
    parser.set_defaults(func=run)


@dataclass
class _Job:
    """What an interrupt needs to know: which job, whether this command created it, whether it
    ended; and whether stderr's last line is an unfinished progress line."""

    id: str | None = None
    ours: bool = True
    finished: bool = False
    midline: bool = False


def run(args: argparse.Namespace) -> int:
    from musicsep.clients import Client, ConnectionFailed, ServerError

    remote = args.file.startswith(("http://", "https://"))
    if not remote and not Path(args.file).is_file():
        problem = "not a regular file" if Path(args.file).exists() else "no such file"
        return _say(f"{args.file}: {problem}", EXIT_BAD_INPUT)
    job = _Job()
    try:
        client = Client(args.server, api_key=args.api_key)
    except ValueError as exc:  # a server URL without a scheme or host, e.g. `localhost:8000`
        return _say(f"--server {args.server}: {exc}", EXIT_USAGE)
    with client:
        try:
            return _submit_and_follow(client, args, remote, job)
        except KeyboardInterrupt:
            _end_line(job)
            return _interrupted(client, job)
        except ConnectionFailed as exc:
            _end_line(job)
            return _say(f"{exc} (is the server running? --server or $MUSICSEP_SERVER)", EXIT_UNREACHABLE)
        except ServerError as exc:
            _end_line(job)
            return _say(f"{exc.message} ({exc.status} {exc.code})", exit_for(exc.code, exc.status))
        except OSError as exc:  # writing the stems here
            return _say(f"{exc.strerror or exc}: {exc.filename or args.out}", _local_exit(exc))


def _submit_and_follow(client, args: argparse.Namespace, remote: bool, job: _Job) -> int:
    from musicsep.clients import Cancelled, Completed, Failed, Progress, Queued

    options = {
        "model": args.model,
        "stems": args.stems,
        "two_stems": args.two_stems,
        "format": args.format,
        "ensemble": args.ensemble,
        "ensemble_method": args.ensemble_method,
        "ensemble_weights": args.ensemble_weights,
        "priority": args.priority,
        "idempotency_key": args.idempotency_key,
    }
    if remote:
        accepted = client.submit(audio_url=args.file, **options)
    else:
        accepted = client.submit(Path(args.file), **options)
    job.id, job.ours = accepted["job_id"], not accepted.get("replayed", False)
    earlier = "" if job.ours else " (not created by this command: an earlier request with this idempotency key was)"
    print(f"job {job.id}{earlier}", file=sys.stderr, flush=True)
    for event in client.events(accepted["events_url"]):
        if isinstance(event, Queued) and event.position:
            print(f"queued, position {event.position}", file=sys.stderr)
        elif isinstance(event, Progress):
            print(f"\r{event.stage:>8} {event.percent:5.1f}%", end="", file=sys.stderr, flush=True)
            job.midline = True
        elif event.terminal:
            job.finished = True
            _end_line(job)
            if isinstance(event, Completed):
                return _deliver(client, event, args)
            if isinstance(event, Failed):
                return _say(f"job {job.id} failed ({event.code}): {event.message}", exit_for(event.code))
            reason = event.reason if isinstance(event, Cancelled) else event.raw
            return _say(f"job {job.id} was cancelled on the server: {reason}", EXIT_FAILED)
    _end_line(job)
    return _say(f"the event stream of job {job.id} ended before the job did", EXIT_UNREACHABLE)


def _interrupted(client, job: _Job) -> int:
    """Ctrl-C: cancel the job this command created; ask first about anyone else's."""
    from musicsep.clients import ClientError, ServerError

    if job.id is None:
        return _say("interrupted before the server answered: no job to cancel", EXIT_INTERRUPTED)
    if job.finished:
        return _say(f"interrupted; job {job.id} has ended, its stems stay on the server", EXIT_INTERRUPTED)
    try:
        if not job.ours and not _confirm(f"job {job.id} was not created by this command; cancel it anyway? [y/N] "):
            return _say(f"interrupted; left job {job.id} running (not created by this command)", EXIT_INTERRUPTED)
        client.cancel(job.id)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return _say(f"interrupted again; job {job.id} may still be running", EXIT_INTERRUPTED)
    except ServerError as exc:
        if exc.code == "job_finished":
            return _say(f"interrupted; job {job.id} has ended, its stems stay on the server", EXIT_INTERRUPTED)
        return _say(f"interrupted, but job {job.id} could not be cancelled: {exc}", EXIT_INTERRUPTED)
    except ClientError as exc:
        return _say(f"interrupted, but job {job.id} could not be cancelled: {exc}", EXIT_INTERRUPTED)
    return _say(f"interrupted; cancelled job {job.id} on the server", EXIT_INTERRUPTED)


def _confirm(question: str) -> bool:
    """Yes only when a person at a terminal types it; a script's stdin never says yes."""
    if not sys.stdin.isatty():
        return False
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _deliver(client, completed, args: argparse.Namespace) -> int:
    from musicsep.clients.common import absolute

    if args.no_download:
        for name, info in completed.stems.items():
            print(f"{name}\t{absolute(client.base_url, info['url'])}")  # S3 links are absolute already
        return EXIT_OK
    for path in client.download_all(completed, args.out).values():
        print(path)
    return EXIT_OK


def _local_exit(exc: OSError) -> int:
    return EXIT_DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else EXIT_FAILED


def _end_line(job: _Job) -> None:
    """Finish the progress line, so that what follows starts a line of its own."""
    if job.midline:
        print(file=sys.stderr)
        job.midline = False


def _say(message: str, status: int) -> int:
    """One line on stderr; returns `status`."""
    print(f"musicsep submit: {message}", file=sys.stderr)
    return status
