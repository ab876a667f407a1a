"""Upload size cap, counted on the body as it is read, whatever Content-Length says.

Starlette has a limiter (`max_body_size`), but when Content-Length announces too much it writes
its own plain-text 413, outside the error envelope; and FastAPI turns an error raised while a
form is parsed into a 400. This middleware sits inside the request-id one and owns the answer:
a declared size over the cap is refused before a byte of body is read; otherwise bytes are
counted as the app receives them, and at the first byte over the cap reading stops and whatever
the app was about to answer is replaced by the 413 envelope.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musicsep.api.errors import envelope


class BodyTooLarge(Exception):
    """Raised from `receive` to stop whoever is reading the body."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit_mb = self.max_bytes / (1024 * 1024)
        response = envelope(
            413, "content_too_large", f"the upload is larger than this server accepts (about {limit_mb:.1f} MB)"
        )
        response.headers["connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a half-read body is dropped; the 413 follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)
