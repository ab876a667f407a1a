"""`cancel(job)` of both clients: it stops a queued or running job, and a job that has finished
keeps its stems (409 `job_finished`), where `delete` would remove them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from musicsep.clients import AsyncClient, Cancelled, Client, Completed, ServerError
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath


def test_cancel_stops_running_and_queued_jobs_and_never_deletes_a_finished_one(live_server, make_clip):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    clip = make_clip(seconds=1.0)
    try:
        with Client(server.url) as client:
            done = client.submit(clip)["job_id"]
            fake.block_until_started(1)
            asyncio.run(fake.finish(done))
            completed = client.wait(done)
            assert isinstance(completed, Completed)
            running = client.submit(clip)["job_id"]
            fake.block_until_started(2)
            queued = client.submit(clip)["job_id"]

            assert client.cancel(queued).id == queued
            assert isinstance(client.wait(queued), Cancelled)
            with pytest.raises(ServerError) as refused:
                client.cancel(done)
            assert (refused.value.status, refused.value.code) == (409, "job_finished")

            async def from_async() -> tuple[str, ServerError]:
                async with AsyncClient(server.url) as aio:
                    cancelled = await aio.cancel(running)
                    try:
                        await aio.cancel(done)
                    except ServerError as exc:
                        return cancelled.id, exc
                    raise AssertionError("a finished job was cancelled")

            cancelled_id, error = asyncio.run(from_async())
            assert cancelled_id == running and (error.status, error.code) == (409, "job_finished")
            fake.release()
            assert isinstance(client.wait(running), Cancelled)
            assert client.job(done).status == "completed"
            stem = completed.stems["vocals"]
            assert httpx.get(server.url + stem["url"], timeout=10).status_code == 200, "its stems still download"
            # A pipeline that writes no previews (this stand-in) still gets them, from the finisher.
            assert httpx.get(server.url + stem["preview_url"], timeout=10).content[:4] == b"OggS"
    finally:
        fake.release()
