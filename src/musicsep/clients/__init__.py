"""Python clients for a musicsep server: `Client` (httpx, sync) and `AsyncClient` (aiohttp).

They import no server code and no torch, so `pip install musicsep` users on a laptop can drive a
GPU box. Both read the same typed events through the same SSE parser, return the same typed job
and model views, and raise only `ClientError`s: `ServerError` for the server's error envelope,
`ConnectionFailed` when the server cannot be reached. docs/clients.md is the guide.
"""

from musicsep.clients.aio import AsyncClient
from musicsep.clients.analysis import Key, Loudness, Tempo, TrackAnalysis
from musicsep.clients.errors import ClientError, ConnectionFailed, ServerError
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
from musicsep.clients.live import LiveBlock
from musicsep.clients.sync import Client
from musicsep.clients.views import Fallback, Job, ModelCatalog, ModelInfo
from musicsep.clients.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "Analysis",
    "AsyncClient",
    "Cancelled",
    "Client",
    "ClientError",
    "Completed",
    "ConnectionFailed",
    "Event",
    "Failed",
    "Fallback",
    "Job",
    "Key",
    "LiveBlock",
    "Loudness",
    "ModelCatalog",
    "ModelInfo",
    "Progress",
    "Queued",
    "ServerError",
    "Started",
    "Stem",
    "Tempo",
    "TrackAnalysis",
    "WebhookVerificationError",
    "verify_webhook",
]
