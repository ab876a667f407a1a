"""Check that a webhook really came from your musicsep server (Standard Webhooks scheme).

    from musicsep.clients.webhooks import verify_webhook
    event = verify_webhook(request_body, request_headers, secret="whsec_...")

The `standardwebhooks` package does the checking (signature over `id.timestamp.body` with the
server's secret, compared in constant time; timestamps more than 5 minutes away are refused, so a
recorded delivery cannot be replayed later). Pass the body bytes exactly as received: parsing and
re-serialising the JSON changes them and breaks the signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str | bytes) -> dict[str, Any]:
    """The delivered message (`{"type", "timestamp", "data"}`) when it is genuine.

    Raises WebhookVerificationError when a header is missing, the signature does not match, or
    the timestamp is too old or too new. `webhook-id` stays the same across retries: use it to
    drop repeats.
    """
    return dict(Webhook(secret).verify(body, dict(headers)))
