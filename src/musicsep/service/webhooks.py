"""Webhook delivery: Standard Webhooks signatures, retries with backoff and jitter, 410 disables.

Signing follows https://www.standardwebhooks.com (the `standardwebhooks` package signs, so the
bytes are exactly what every receiver library verifies): `webhook-id` (stable across retries of
one event, so a receiver can drop repeats), `webhook-timestamp` (of the attempt), and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with one per-deployment
secret. Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
(`Retry-After` honoured up to the cap); 410 Gone means the receiver wants no more and disables
the job's webhook; other answers are final. Targets are SSRF-checked and pinned per attempt by
`service.fetch`, like `audio_url` inputs.

Blocking by design (it waits between retries): the notifier runs deliveries on its own small
thread pool, never on the event loop.
"""

from __future__ import annotations

import enum
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from loguru import logger
from standardwebhooks import Webhook

from musicsep.config import Settings
from musicsep.service.events import Event
from musicsep.service.fetch import (
    FetchLimits,
    Resolver,
    UrlFetchFailed,
    UrlRefused,
    open_client,
    pin,
    system_resolver,
)


class Outcome(str, enum.Enum):
    #: The receiver answered 2xx.
    DELIVERED = "delivered"
    #: The receiver answered 410 Gone: no more deliveries for this job.
    DISABLED = "disabled"
    #: A final non-2xx answer, or every retry used up.
    GAVE_UP = "gave_up"
    #: The URL leads to a non-public address (SSRF check); never sent.
    REFUSED = "refused"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_s: float = 1.0
    max_delay_s: float = 300.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    attempts: int
    status: int | None


def message_id(job_id: str, event_id: int) -> str:
    """The same for every retry of one event, and in every process that might send it."""
    return f"msg_{job_id}_{event_id}"


def payload(job_id: str, event: Event) -> str:
    """Body in the Standard Webhooks shape: type, timestamp, data."""
    body = {
        "type": f"job.{event.type}",
        "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "data": {"job_id": job_id, "event_id": event.id, **event.data},
    }
    return json.dumps(body, separators=(",", ":"))


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class WebhookSender:
    """Signs and delivers one message, retrying as the policy says."""

    def __init__(
        self,
        secret: str | bytes,
        policy: RetryPolicy | None = None,
        limits: FetchLimits | None = None,
        *,
        resolve: Resolver = system_resolver,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._signer = Webhook(secret)
        self.policy = policy or RetryPolicy()
        self._limits = limits or FetchLimits()
        self._resolve = resolve
        self._sleep = sleep
        self._jitter = jitter

    def headers(self, msg_id: str, body: str, now: float | None = None) -> dict[str, str]:
        stamp = datetime.fromtimestamp(int(time.time() if now is None else now), tz=timezone.utc)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, stamp, body),
            "content-type": "application/json",
        }

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Exponential backoff with jitter ("equal jitter": half fixed, half random)."""
        if retry_after is not None and retry_after.isdigit():
            return min(float(retry_after), self.policy.max_delay_s)
        ceiling = min(self.policy.max_delay_s, self.policy.base_s * 2 ** (attempt - 1))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def send(self, url: str, msg_id: str, body: str) -> Delivery:
        status: int | None = None
        with open_client(self.policy.timeout_s) as client:
            for attempt in range(1, self.policy.attempts + 1):
                retry_after = None
                try:
                    target = pin(url, self._limits, self._resolve)
                except UrlRefused:
                    return Delivery(Outcome.REFUSED, attempt - 1, None)
                except UrlFetchFailed:
                    status = None  # the name did not resolve: maybe later
                else:
                    try:
                        reply = client.post(
                            target.url,
                            content=body.encode(),
                            headers={**target.headers, **self.headers(msg_id, body)},
                            extensions=target.extensions,
                        )
                    except httpx.HTTPError:
                        status = None
                    else:
                        status = reply.status_code
                        if 200 <= status < 300:
                            return Delivery(Outcome.DELIVERED, attempt, status)
                        if status == 410:
                            return Delivery(Outcome.DISABLED, attempt, status)
                        if not _retryable(status):
                            return Delivery(Outcome.GAVE_UP, attempt, status)
                        retry_after = reply.headers.get("retry-after")
                if attempt < self.policy.attempts:
                    self._sleep(self.delay(attempt, retry_after))
        return Delivery(Outcome.GAVE_UP, self.policy.attempts, status)


class WebhookNotifier:
    """Decides which events of a job become webhooks and delivers them in the background.

    Terminal events always go; progress events only when the job asked for them, and then at
    most one per `progress_interval_s`. After a 410 nothing more is sent for that job.
    """

    def __init__(self, sender: WebhookSender, *, threads: int = 4, progress_interval_s: float = 5.0) -> None:
        self._sender = sender
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self._interval = progress_interval_s
        self._lock = threading.Lock()
        self._disabled: set[str] = set()
        self._last_progress: dict[str, float] = {}

    def notify(self, job_id: str, url: str, event: Event, *, progress: bool = False) -> Future[Delivery] | None:
        """Queue the delivery of `event`; None when the event is not sent (type, throttle, 410)."""
        with self._lock:
            if job_id in self._disabled or not self._wanted(job_id, event, progress):
                return None
            if event.terminal:
                self._last_progress.pop(job_id, None)
        return self._pool.submit(self._deliver, job_id, url, event)

    def _wanted(self, job_id: str, event: Event, progress: bool) -> bool:
        if event.terminal:
            return True
        if not progress or event.type != "progress":
            return False
        now = time.monotonic()
        if now - self._last_progress.get(job_id, -self._interval) < self._interval:
            return False
        self._last_progress[job_id] = now
        return True

    def _deliver(self, job_id: str, url: str, event: Event) -> Delivery:
        delivery = self._sender.send(url, message_id(job_id, event.id), payload(job_id, event))
        log = logger.bind(job_id=job_id)
        if delivery.outcome is Outcome.DISABLED:
            with self._lock:
                self._disabled.add(job_id)
            log.info("webhook disabled by the receiver (410)")
        elif delivery.outcome is not Outcome.DELIVERED:
            log.warning(
                "webhook for event {} not delivered: {} after {} attempt(s), last status {}",
                event.id,
                delivery.outcome.value,
                delivery.attempts,
                delivery.status,
            )
        return delivery

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def webhook_notifier(settings: Settings) -> WebhookNotifier | None:
    """The deployment's notifier; None when no secret is set (webhook URLs are then only stored)."""
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        return None
    limits = FetchLimits(allow_loopback=settings.allow_loopback_urls)
    return WebhookNotifier(WebhookSender(settings.webhook_secret.get_secret_value(), limits=limits))
