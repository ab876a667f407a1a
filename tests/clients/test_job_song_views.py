"""What the clients show of a job's song: its title (renamed, and naming the downloads), the model
that really ran and why (typed in `started`, `completed` and the job view), and deleting a
finished job with its files."""

from __future__ import annotations

import asyncio

import pytest

from musicsep.clients import AsyncClient, Client, Completed, Fallback, Job, ServerError, Started
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath


def test_delete_of_a_finished_job_removes_it_and_its_stems(live_server, make_clip, tmp_path):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    try:
        with Client(server.url) as client:
            job_id = client.submit(make_clip(seconds=1.0), stems=["vocals"])["job_id"]
            fake.block_until_started(1)
            asyncio.run(fake.finish(job_id))  # the step hand-over is thread-safe: any loop may await it
            completed = client.wait(job_id)
            assert client.delete(job_id) is None
            with pytest.raises(ServerError) as missing:
                client.job(job_id)
            assert (missing.value.status, missing.value.code) == (404, "job_not_found")
            with pytest.raises(ServerError) as gone:
                client.download_all(completed, tmp_path / "stems")
            assert gone.value.status == 404
    finally:
        fake.release()


def test_rename_sets_the_title_and_none_gives_back_the_file_name(live_server, make_clip):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    clip = make_clip(seconds=1.0)
    try:
        with Client(server.url) as client:
            job_id = client.submit(clip)["job_id"]
            assert client.job(job_id).title == clip.stem and client.job(job_id).source_name == clip.name
            renamed = client.rename(job_id, "  Mon Morceau préféré ")
            assert renamed.title == "Mon Morceau préféré" == client.job(job_id).title

            async def reset() -> Job:
                async with AsyncClient(server.url) as client:
                    return await client.rename(renamed, None)

            assert asyncio.run(reset()).title == clip.stem
    finally:
        fake.release()


def test_download_all_names_the_files_after_the_jobs_title(live_server, make_clip, tmp_path):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    try:
        with Client(server.url) as client:
            job_id = client.submit(make_clip(seconds=1.0), title="Été indien", stems=["vocals", "drums"])["job_id"]
            fake.block_until_started(1)
            asyncio.run(fake.finish(job_id))  # the step hand-over is thread-safe: any loop may await it
            completed = client.wait(job_id)
            saved = client.download_all(completed, tmp_path / "stems")
    finally:
        fake.release()
    assert {name: path.name for name, path in saved.items()} == {
        "vocals": "Été indien - vocals.wav",
        "drums": "Été indien - drums.wav",
    }


def test_a_fallback_is_typed_in_the_events_and_in_the_job_view(live_server, make_clip):
    server = live_server(fallback="htdemucs,dsp")
    with Client(server.url) as client:
        accepted = client.submit(make_clip(seconds=1.0), model="htdemucs_ft", analyze=False)
        events = list(client.events(accepted["job_id"]))
        job = client.job(accepted["job_id"])
    started = next(e for e in events if isinstance(e, Started))
    assert (started.model, started.requested_model) == ("dsp", "htdemucs_ft")
    assert "used 'dsp' instead" in started.fallback_reason
    completed = events[-1]
    assert isinstance(completed, Completed) and completed.model == "dsp"
    assert completed.fallback_reason == started.fallback_reason
    assert (job.model, job.requested_model) == ("dsp", "htdemucs_ft")
    assert job.fallback == Fallback(from_="htdemucs_ft", to="dsp", reason=job.fallback.reason)
    assert "used 'dsp' instead" in job.fallback.reason
