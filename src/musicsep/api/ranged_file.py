"""A FileResponse whose Range refusals carry the error envelope like every other error.

Starlette's FileResponse parses `Range` itself and answers what it cannot serve with its own
text/plain response: 416 with `Content-Range: bytes */<size>` for a range past the end, 400 for a
malformed header. Those are the only non-2xx answers it makes, so this class lets Starlette parse
(a second RFC 9110 range parser here would be one more to keep in step) and replaces just those
two answers with the envelope on their way out, keeping Starlette's `Content-Range` header and
its words about what was wrong.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.types import Message, Receive, Scope, Send

from musicsep.api.errors import envelope

#: Starlette's Range refusals -> our error code.
_RANGE_REFUSALS = {416: "range_not_satisfiable", 400: "range_malformed"}


class EnvelopedFileResponse(FileResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused: Message | None = None
        detail = b""

        async def enveloped(message: Message) -> None:
            nonlocal refused, detail
            if message["type"] == "http.response.start" and message["status"] in _RANGE_REFUSALS:
                refused = message
                return
            if refused is None:
                await send(message)
                return
            detail += message.get("body", b"")
            if not message.get("more_body", False):
                await _refusal(refused, detail.decode("utf-8", "replace"))(scope, receive, send)

        await super().__call__(scope, receive, enveloped)


def _refusal(start: Message, detail: str):
    status = start["status"]
    content_range = Headers(raw=start["headers"]).get("content-range")
    if status == 416:
        size = (content_range or "").rpartition("/")[2]
        message = f"the requested range starts past the end of the file ({size} bytes)"
    else:
        message = f"the Range header cannot be served: {detail or 'malformed'}"
    headers = {"Content-Range": content_range} if content_range else None
    return envelope(status, _RANGE_REFUSALS[status], message, headers)
