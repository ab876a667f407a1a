"""Webhooks from the embedded server (one process, SQLite): the same signed terminal events."""

from __future__ import annotations

import base64

import httpx

import server_harness as harness
from http_target import http_target
from musicsep.clients.webhooks import verify_webhook
from server_harness import wait_until

live_server = harness.live_server
SECRET = "whsec_" + base64.b64encode(b"embedded server webhook secret!!").decode()


def test_the_embedded_server_sends_one_signed_webhook_per_finished_job(live_server, make_clip):
    server = live_server(webhook_secret=SECRET, allow_loopback_urls=True)
    with http_target() as receiver:
        receiver.responses = [503]  # the first try fails: the same message comes again
        hook = f"{receiver.url}/hook"
        jobs = []
        for _ in range(2):
            with make_clip(seconds=2.0).open("rb") as handle:
                reply = httpx.post(
                    f"{server.url}/api/v1/jobs",
                    files={"file": ("a.wav", handle, "audio/wav")},
                    data={"webhook_url": hook, "analyze": "false"},
                    timeout=60,
                )
            assert reply.status_code == 202
            jobs.append(reply.json()["job_id"])
        httpx.delete(f"{server.url}/api/v1/jobs/{jobs[1]}", timeout=10)
        for job in jobs:
            assert harness.stream_events(f"{server.url}/api/v1/jobs/{job}/events")[1][-1][1] in (
                "completed",
                "cancelled",
            )
        wait_until(lambda: len(receiver.posts) >= 3, 30, "the webhooks")
    messages = [verify_webhook(body, headers, SECRET) for headers, body in receiver.posts]
    assert {m["data"]["job_id"]: m["type"] for m in messages} == {jobs[0]: "job.completed", jobs[1]: "job.cancelled"}
    ids = [headers["webhook-id"] for headers, _ in receiver.posts]
    assert len(ids) == 3 and len(set(ids)) == 2  # the retried one kept its id


def test_without_a_secret_no_webhook_is_sent(live_server, make_clip):
    server = live_server(allow_loopback_urls=True)
    assert server.service.webhooks is None
