"""What both clients share besides the SSE parser and the typed views: options as the server takes
them, URL handling, and the requests and answers that are the same over httpx and aiohttp.

The option names are the protocol's (musicsep.protocol.JobParams); their values are checked by the
server, whose 422 says what is wrong."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

from musicsep.clients.errors import ConnectionFailed
from musicsep.protocol import OPTION_NAMES


def known_fields(kind: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a JSON object that are fields of the dataclass `kind` (except `raw`): what
    the server adds in a later version is left out here, never refused."""
    names = {f.name for f in dataclasses.fields(kind)} - {"raw"}
    return {name: value for name, value in raw.items() if name in names}


def _check_names(options: dict[str, Any]) -> None:
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class Submission:
    """What a POST /jobs or /separate sends: a JSON body for an `audio_url`, else the option
    fields and the file (name, open handle) of a multipart upload."""

    json: dict[str, Any] | None
    fields: dict[str, str]
    file: tuple[str, BinaryIO] | None


def submission(
    stack: ExitStack, audio: str | Path | None, audio_url: str | None, options: dict[str, Any]
) -> Submission:
    """Exactly one of a file (`audio`, opened on `stack`) or an `audio_url` (which the server
    downloads: public http(s) addresses only), with the options as the server takes them."""
    if (audio is None) == (audio_url is None):
        raise TypeError("give either a file (audio) or audio_url, not both and not neither")
    if audio is None:
        _check_names(options)
        body: dict[str, Any] = {"audio_url": audio_url}
        for name, value in options.items():
            if value is not None:  # lists joined by commas, as in the form (earlier servers take only that)
                body[name] = ",".join(str(part) for part in value) if isinstance(value, (list, tuple)) else value
        return Submission(body, {}, None)
    path = Path(audio)
    return Submission(None, form_fields(options), (path.name, stack.enter_context(path.open("rb"))))


def form_fields(options: dict[str, Any]) -> dict[str, str]:
    """Separation options → multipart form fields (lists joined by commas, booleans lower-case)."""
    _check_names(options)
    fields = {}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(part) for part in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        fields[name] = str(value)
    return fields


def server_url(base_url: str) -> str:
    """The server's base URL without a trailing slash; ValueError, saying what a base URL looks
    like, when it is not an http(s) address with a host (a typo is then caught at construction,
    not at the first call as a confusing connection error)."""
    parts = urlsplit(base_url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"a server URL is like http://127.0.0.1:8000 (http or https, a host, a port): {base_url!r}")
    return base_url.rstrip("/")


def absolute(base_url: str, url: str) -> str:
    """Links in events are relative to the server unless it runs with a public URL."""
    return urljoin(base_url.rstrip("/") + "/", url)


def same_origin(base_url: str, url: str) -> bool:
    """Whether `url` is on the musicsep server itself. Credentials go only there: stems stored
    in S3 come as presigned links to the bucket, which must not see the API key (and refuses
    requests that carry a second authorisation anyway)."""
    ours, theirs = urlsplit(base_url), urlsplit(url)
    return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


def events_path(job_or_url: str) -> str:
    """A job id or an `events_url` (which may carry a stream token) → the URL to open."""
    return job_or_url if "/" in job_or_url else f"/api/v1/jobs/{job_or_url}/events"


def accepted(answer: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """POST /jobs's answer with `replayed`: whether the server gave back the job of an earlier
    request with the same idempotency key (its `Idempotent-Replayed: true`), which this caller
    did not create and may not want to cancel."""
    return {**answer, "replayed": headers.get("idempotent-replayed", "").lower() == "true"}


def jobs_query(status: str | Iterable[str] | None, limit: int) -> list[tuple[str, str]]:
    """GET /api/v1/jobs's query: `status` repeated once per status asked for, and `limit`."""
    statuses = [status] if isinstance(status, str) else list(status or [])
    return [*(("status", str(name)) for name in statuses), ("limit", str(limit))]


def stream_lost(url: str, attempts: int, last_event_id: int) -> ConnectionFailed:
    """The error of an event stream that could not be reopened `attempts` times in a row."""
    return ConnectionFailed(url, f"the event stream was lost {attempts} times in a row (last event id {last_event_id})")


def unfinished_stream(job_id: str | None) -> str:
    """Why POST /separate's stream is an error when it ends before the job's terminal event."""
    return f"the event stream of job {job_id} ended before the job did"
