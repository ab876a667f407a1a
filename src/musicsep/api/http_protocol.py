"""uvicorn's HTTP protocol with the connection limits it lacks.

A header deadline, a header size cap and a body idle timeout.

uvicorn has one connection timeout, `timeout_keep_alive`: the wait between two requests, reset by
any byte. A client that opens a connection and sends nothing, or half a request line, or one
header byte every few seconds, is kept forever (uvicorn issue #157, "timeout-request-start", never
built), so a few thousand such sockets hold every file descriptor and every slot of
`limit_concurrency`, unauthenticated. Hand-written, because no maintained package adds these to
uvicorn, and the servers that have some were measured with the same 2,000 idle sockets and 50
clients (bench/idle_sockets.py's setup; figures in docs/security.md): granian 2.8
has a header timeout but no body timeout, and served none of the clients (its backpressure counts
idle connections); hypercorn 0.18 has only idle-read and keep-alive timeouts, served them all
but at a p99 of 1 s; both would also drop the uvicorn-specific graceful shutdown that the event
streams rely on (sse-starlette). Each connection gets:

- a header deadline: the request line and headers must be complete `header_timeout_s` after the
  connection opens (or after the first byte of the next request on a kept-alive connection),
  whatever the pace of the bytes; else `408` and close (at a random moment of the timeout's last
  fifth, so sockets opened together do not all expire together);
- a header size cap: more than `max_header_bytes` before the headers end answers `431` and
  closes (httptools buffers headers without a limit);
- a body idle timeout: while a request body is being read, `body_idle_timeout_s` without a byte
  closes the connection (the app then sees a disconnect). Time the server is not reading (flow
  control paused, or `Expect: 100-continue` not yet answered) does not count.
Between requests uvicorn's own `timeout_keep_alive` applies. Timeouts close the socket quietly:
logging each one would let the same attacker fill the log.

Built on `HttpToolsProtocol`, the one uvicorn's `http="auto"` picks with uvicorn[standard]; the
parser callbacks it extends are uvicorn's own (`on_message_begin`, `on_headers_complete`,
`on_message_complete`, `data_received`), so a uvicorn upgrade is checked by
tests/api/test_connection_timeouts.py, and the test harness serves every server test with it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from musicsep.config import Settings

_HEADER_JITTER = 0.2
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_HEADERS_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """One per connection, made by uvicorn; `limits` is set on a subclass by `protocol_with`."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._last_body_byte = 0.0

    # --- the header deadline and size cap -------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        self._reading_body = not upgrading
        self._last_body_byte = self.loop.time()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        self._header_bytes = 0
        # Somewhere in the last fifth of the timeout: sockets opened in one burst are then not all
        # closed (and reopened by their owner) in one burst, which stalled the loop ~100 ms a time.
        delay = self.limits.header_timeout_s * (1 - _HEADER_JITTER * random.random())
        self._header_timer = self.loop.call_later(delay, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        self._close_with(_REQUEST_TIMEOUT)

    def _close_with(self, response: bytes) -> None:
        """Answer only when no response of an earlier (pipelined) request is being written."""
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()

    # --- bytes in ---------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        in_headers = self._header_timer is not None
        super().data_received(data)
        if self.transport.is_closing():
            return
        if in_headers and self._header_timer is not None:  # the headers are still not complete
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._cancel_header_deadline()
                self._close_with(_HEADERS_TOO_LARGE)
                return
        if self._reading_body:
            self._last_body_byte = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_idle_timeout_s, self._check_body_idle)

    # --- the body idle timeout --------------------------------------------------------------------
    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()

    def _stop_body_timer(self) -> None:
        self._reading_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _server_is_not_reading(self) -> bool:
        cycle = self.cycle
        return self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)

    def _check_body_idle(self) -> None:
        """One timer per body, moved forward rather than re-created for every chunk."""
        self._body_timer = None
        if not self._reading_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._server_is_not_reading():
            self._last_body_byte = now
        idle_for = now - self._last_body_byte
        if idle_for >= self.limits.body_idle_timeout_s:
            self._reading_body = False
            self.transport.close()
            return
        self._body_timer = self.loop.call_later(self.limits.body_idle_timeout_s - idle_for, self._check_body_idle)

    # --- the end of the connection ----------------------------------------------------------------
    def handle_websocket_upgrade(self) -> None:
        self._stop_body_timer()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        self._stop_body_timer()
        super().connection_lost(exc)


def protocol_for(settings: Settings) -> type[TimedHttpToolsProtocol]:
    """uvicorn's `http=` for these settings (`musicsep serve`, the test harness)."""
    return protocol_with(
        ConnectionLimits(
            header_timeout_s=settings.http_header_timeout_s,
            body_idle_timeout_s=settings.http_body_idle_timeout_s,
            max_header_bytes=settings.http_max_header_kb * 1024,
        )
    )


def protocol_with(limits: ConnectionLimits) -> type[TimedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn's `http=`: uvicorn builds one per connection and
    passes it no options of ours, so the limits travel on the class."""
    return type("TimedHttpToolsProtocol", (TimedHttpToolsProtocol,), {"limits": limits})
