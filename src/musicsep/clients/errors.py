"""The errors clients raise: the server's error envelope, or a server that could not be reached.

Both derive from `ClientError`, so one `except ClientError` covers every failure of a call; the
transport libraries' own exceptions (httpx, aiohttp) never reach the caller.
"""

from __future__ import annotations

import json
import re

#: A Retry-After in seconds (the HTTP-date form is not used by musicsep).
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


class ClientError(Exception):
    """Any failure of a client call."""


class ServerError(ClientError):
    """The server answered `{"error": {"code", "message", "request_id"}}` with an error status."""

    def __init__(
        self, status: int, code: str, message: str, request_id: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.request_id, self.retry_after = request_id, retry_after

    @classmethod
    def from_body(cls, status: int, body: bytes, retry_after: str | None) -> ServerError:
        try:
            error = json.loads(body)["error"]
            code, message, request_id = error["code"], error["message"], error.get("request_id")
        except (ValueError, KeyError, TypeError):
            code, message, request_id = "http_error", body[:200].decode(errors="replace"), None
        # ASCII digits only: str.isdigit() also takes "²", which float() refuses.
        wait = float(retry_after) if retry_after and _SECONDS.fullmatch(retry_after) else None
        return cls(status, code, message, request_id, wait)


class ConnectionFailed(ClientError, ConnectionError):
    """No answer from `url`: refused, a name that does not resolve, a timeout, or a connection
    lost mid-way. A `ConnectionError` (an `OSError`) too, so code that already catches those for
    network trouble keeps working."""

    def __init__(self, url: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url, self.reason, self.timed_out = url, reason, timed_out


def connection_failed(url: str, exc: BaseException, *, timed_out: bool) -> ConnectionFailed:
    """A transport exception → ConnectionFailed in words a user can act on (the libraries' own
    text says which of refused / unknown host / reset it was; timeouts often come without text)."""
    detail = str(exc).strip()
    if timed_out:
        reason = f"timed out ({detail})" if detail and "timed out" not in detail.lower() else detail or "timed out"
    else:
        reason = detail or type(exc).__name__
    return ConnectionFailed(url, reason, timed_out=timed_out)


#: Longest a client waits on a Retry-After before reconnecting an event stream.
MAX_RETRY_WAIT_S = 60.0


def retry_wait(error: ServerError) -> float:
    """Seconds to wait before reconnecting an event stream refused with `error`, which is raised
    again unless it says "later": 503 (the server or its event log is briefly unavailable, e.g.
    Redis restarting) or 429 (too many open streams). The stream resumes with Last-Event-ID."""
    if error.status not in (429, 503):
        raise error
    return min(error.retry_after if error.retry_after is not None else 1.0, MAX_RETRY_WAIT_S)
