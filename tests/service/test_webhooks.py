"""Job webhooks: signed per Standard Webhooks, retried with backoff, 410 stops them.

The receiver is a real HTTP server on 127.0.0.1, so the sender runs with the test-only loopback
allowance. Backoff delays are recorded instead of slept (the sender's `sleep` is injected), so
the tests check the delays without waiting for them.
"""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks import Webhook

from http_target import http_target
from musicsep.clients.webhooks import WebhookVerificationError, verify_webhook
from musicsep.service.events import Event
from musicsep.service.fetch import FetchLimits
from musicsep.service.webhooks import (
    Outcome,
    RetryPolicy,
    WebhookNotifier,
    WebhookSender,
    message_id,
    payload,
)

SECRET = "whsec_" + base64.b64encode(b"a per-deployment secret, 32 byte").decode()
JOB = "ab" * 16
LOOPBACK_OK = FetchLimits(allow_loopback=True)
COMPLETED = Event(7, "completed", {"event": "completed", "stems": {}, "analysis": None, "timings": {}})


def make_sender(slept: list[float], attempts: int = 6) -> WebhookSender:
    return WebhookSender(
        SECRET, RetryPolicy(attempts=attempts, base_s=1.0, timeout_s=5), LOOPBACK_OK, sleep=slept.append
    )


def test_500_twice_then_200_is_three_deliveries_of_one_message_all_verified():
    slept: list[float] = []
    with http_target() as receiver:
        receiver.responses = [500, 500, 200]
        delivery = make_sender(slept).send(f"{receiver.url}/hook", message_id(JOB, 7), payload(JOB, COMPLETED))
    assert delivery.outcome is Outcome.DELIVERED and delivery.attempts == 3
    assert len(receiver.posts) == 3
    assert {headers["webhook-id"] for headers, _ in receiver.posts} == {f"msg_{JOB}_7"}
    for headers, body in receiver.posts:
        message = verify_webhook(body, headers, SECRET)
        assert message["type"] == "job.completed"
        assert message["data"]["job_id"] == JOB and message["data"]["event_id"] == 7
        assert Webhook(SECRET).verify(body, headers)["data"] == message["data"]
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0


def test_410_stops_deliveries_for_the_job():
    with http_target() as receiver:
        receiver.responses = [410]
        notifier = WebhookNotifier(make_sender([]), progress_interval_s=0)
        url = f"{receiver.url}/hook"
        first = notifier.notify(JOB, url, Event(3, "progress", {"percent": 10.0}), progress=True)
        assert first is not None and first.result(timeout=10).outcome is Outcome.DISABLED
        assert notifier.notify(JOB, url, Event(4, "progress", {"percent": 20.0}), progress=True) is None
        assert notifier.notify(JOB, url, COMPLETED) is None
        notifier.close()
    assert len(receiver.posts) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_are_retried_and_retry_after_is_honoured(status):
    slept: list[float] = []
    with http_target() as receiver:
        receiver.responses = [status, 200]
        delivery = make_sender(slept).send(f"{receiver.url}/hook", "msg_x", "{}")
    assert delivery.outcome is Outcome.DELIVERED and len(receiver.posts) == 2
    assert len(slept) == 1


def test_a_client_error_is_final():
    with http_target() as receiver:
        receiver.responses = [400]
        delivery = make_sender([]).send(f"{receiver.url}/hook", "msg_x", "{}")
    assert (delivery.outcome, delivery.attempts, delivery.status) == (Outcome.GAVE_UP, 1, 400)


def test_an_unreachable_receiver_is_retried_with_growing_delays_then_given_up():
    with http_target() as receiver:
        dead = f"{receiver.url}/hook"
    slept: list[float] = []
    delivery = make_sender(slept, attempts=5).send(dead, "msg_x", "{}")
    assert (delivery.outcome, delivery.attempts) == (Outcome.GAVE_UP, 5)
    assert len(slept) == 4
    for attempt, delay in enumerate(slept, start=1):
        assert 2 ** (attempt - 2) <= delay <= 2 ** (attempt - 1)


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "http://169.254.169.254/", "ftp://example.org/"])
def test_webhooks_to_private_addresses_are_never_sent(url):
    sender = WebhookSender(SECRET, RetryPolicy(attempts=3), FetchLimits(), sleep=[].append)
    assert sender.send(url, "msg_x", "{}").outcome is Outcome.REFUSED


def test_terminal_events_always_go_progress_only_when_asked_and_throttled():
    with http_target() as receiver:
        notifier = WebhookNotifier(make_sender([]), progress_interval_s=3600)
        url = f"{receiver.url}/hook"
        assert notifier.notify(JOB, url, Event(2, "progress", {"percent": 1.0})) is None
        assert notifier.notify(JOB, url, Event(1, "started", {})) is None
        sent = [notifier.notify(JOB, url, Event(n, "progress", {"percent": n}), progress=True) for n in (3, 4, 5)]
        assert sent[0] is not None and sent[1:] == [None, None]
        final = notifier.notify(JOB, url, Event(6, "cancelled", {"reason": "cancelled by request"}))
        assert final is not None
        assert [f.result(timeout=10).outcome for f in (sent[0], final)] == [Outcome.DELIVERED] * 2
        notifier.close()
    assert sorted(json.loads(body)["type"] for _, body in receiver.posts) == ["job.cancelled", "job.progress"]


def test_verify_webhook_refuses_forgeries_and_wrong_secrets():
    sender = WebhookSender(SECRET)
    body = payload(JOB, COMPLETED)
    headers = sender.headers("msg_1", body)
    assert verify_webhook(body.encode(), headers, SECRET)["type"] == "job.completed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace("completed", "failed"), headers, SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, "whsec_" + base64.b64encode(b"another secret").decode())
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, sender.headers("msg_1", body, now=1_000_000_000), SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, {k: v for k, v in headers.items() if k != "webhook-signature"}, SECRET)
