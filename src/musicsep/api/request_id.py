"""Request ids: accepted from `X-Request-Id` or generated, returned, and on every log line.

A pure ASGI middleware rather than `BaseHTTPMiddleware`, so streamed responses (SSE, zip) pass
through untouched. It is also the last line for unexpected errors: they are logged with the
request id and answered with a generic message, never with the exception's text.
"""

from __future__ import annotations

import contextvars
import json
import re
import time
import uuid

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("musicsep_request_id", default=None)
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str | None:
    return _request_id.get()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _ACCEPTABLE.match(offered) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False
        status = 500
        began = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            with logger.contextualize(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        except Exception:
            logger.bind(request_id=request_id).exception("unexpected error")
            if started:
                raise
            body = json.dumps(
                {"error": {"code": "internal_error", "message": "internal server error", "request_id": request_id}}
            ).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            # The access log line (uvicorn's own runs outside the request and cannot carry the id).
            logger.bind(request_id=request_id).info(
                "{} {} -> {} in {:.1f} ms", scope["method"], scope["path"], status, 1000 * (time.monotonic() - began)
            )
            _request_id.reset(token)
