"""Python clients for a musicsep server: `Client` (httpx, sync) and `AsyncClient` (aiohttp).

They import no server code and no torch, so `pip install musicsep` users on a laptop can drive a
GPU box. Both read the same typed events through the same SSE parser.
"""

from musicsep.clients.aio import AsyncClient
from musicsep.clients.errors import ServerError
from musicsep.clients.events import (
    Analysis,
    Cancelled,
    Completed,
    Event,
    Failed,
    Progress,
    Queued,
    Started,
    Stem,
)
from musicsep.clients.sync import Client
from musicsep.clients.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "WebhookVerificationError",
    "verify_webhook",
    "Analysis",
    "AsyncClient",
    "Cancelled",
    "Client",
    "Completed",
    "Event",
    "Failed",
    "Progress",
    "Queued",
    "ServerError",
    "Started",
    "Stem",
]
