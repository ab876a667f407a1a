"""The clients' job and model calls against a live server: downloads into a new folder, the model
catalog, listing, renaming and deleting jobs, each as a typed view."""

from __future__ import annotations

import asyncio

from musicsep.clients import (
    Analysis,
    AsyncClient,
    Cancelled,
    Client,
    Completed,
    Job,
    Key,
    Started,
    Tempo,
    TrackAnalysis,
)
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath


def test_download_all_creates_a_missing_folder_and_writes_one_file_per_stem(live_server, make_clip, tmp_path):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    try:
        with Client(server.url) as client:
            job_id = client.submit(make_clip(seconds=1.0), stems=["vocals", "drums"])["job_id"]
            fake.block_until_started(1)
            asyncio.run(fake.finish(job_id))  # the step hand-over is thread-safe: any loop may await it
            completed = client.wait(job_id)
            assert isinstance(completed, Completed)
            saved = client.download_all(completed, tmp_path / "new" / "stems")
    finally:
        fake.release()

    async def again() -> dict:
        async with AsyncClient(server.url) as client:
            return await client.download_all(completed, str(tmp_path / "async" / "stems"))

    saved_async = asyncio.run(again())
    for files, folder in ((saved, tmp_path / "new" / "stems"), (saved_async, tmp_path / "async" / "stems")):
        assert set(files) == {"vocals", "drums"}
        assert folder.is_dir() and sorted(folder.iterdir()) == sorted(files.values())
        for name, path in files.items():
            assert path.stat().st_size == completed.stems[name]["bytes"] and path.suffix == ".wav"


def test_started_and_analysis_events_carry_their_fields(live_server, make_clip):
    server = live_server()
    with Client(server.url) as client:
        events = list(client.separate(make_clip(seconds=3.0), stems=["vocals"]))
    started = next(e for e in events if isinstance(e, Started))
    assert (started.model, started.device, started.stems) == ("tiny_htdemucs", "cpu", ["vocals"])
    assert started.requested_model == "tiny_htdemucs" and started.fallback_reason is None
    assert abs(started.duration_s - 3.0) < 0.01
    analysis = next(e for e in events if isinstance(e, Analysis))
    assert abs(analysis.duration_s - 3.0) < 0.01
    assert isinstance(analysis.tempo, Tempo) and isinstance(analysis.key, Key)
    assert analysis.tempo.bpm is None or analysis.tempo.bpm > 0
    assert analysis.key.label is None or analysis.key.label.endswith(("major", "minor"))
    assert isinstance(analysis.loudness.lufs, float) and analysis.loudness.peak_dbfs <= 0.0
    completed = events[-1]
    assert isinstance(completed, Completed) and isinstance(completed.analysis, TrackAnalysis)
    assert completed.analysis.key == analysis.key and completed.model == "tiny_htdemucs"


def test_models_lists_the_servers_catalog_and_its_default(live_server):
    server = live_server()
    with Client(server.url) as client:
        catalog = client.models()

    async def from_async():
        async with AsyncClient(server.url) as client:
            return await client.models()

    assert asyncio.run(from_async()) == catalog
    assert catalog.default == "tiny_htdemucs"
    htdemucs = catalog["htdemucs"]
    assert htdemucs.stems == ["drums", "bass", "other", "vocals"] and htdemucs.loaded is False
    assert htdemucs.arch == "demucs" and htdemucs.description
    assert len({model.name for model in catalog.models}) == len(catalog.models) > 1


def test_jobs_lists_newest_first_and_delete_cancels_queued_and_running_jobs(live_server, make_clip):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    clip = make_clip(seconds=1.0)
    try:
        with Client(server.url) as client:
            running = client.submit(clip)["job_id"]
            fake.block_until_started(1)
            queued = client.submit(clip)["job_id"]
            listed = client.jobs()
            assert [job.id for job in listed] == [queued, running]
            assert [job.status for job in listed] == ["queued", "running"]
            assert all(isinstance(job, Job) and not job.finished for job in listed)
            assert [job.id for job in client.jobs(status="queued")] == [queued]
            assert [job.id for job in client.jobs(status=["queued", "running"], limit=1)] == [queued]

            assert client.delete(queued).id == queued
            cancelled = client.wait(queued)
            assert isinstance(cancelled, Cancelled) and cancelled.reason == "cancelled by request"

            async def from_async() -> tuple[list[str], Job | None]:
                async with AsyncClient(server.url) as client:
                    ids = [job.id for job in await client.jobs(status="cancelled")]
                    return ids, await client.delete(listed[1])

            ids, deleted = asyncio.run(from_async())
            assert ids == [queued] and deleted is not None and deleted.id == running
            fake.release()
            assert isinstance(client.wait(running), Cancelled)
            assert client.job(running).finished
    finally:
        fake.release()


def test_submit_says_when_an_idempotency_key_gave_back_an_earlier_job(live_server, make_clip):
    fake = SteppedPipeline(timeout_s=30)
    server = live_server(pipeline=fake)
    clip = make_clip(seconds=1.0)
    try:
        with Client(server.url) as client:
            first = client.submit(clip, idempotency_key="song-1")
            again = client.submit(clip, idempotency_key="song-1")

        async def from_async() -> dict:
            async with AsyncClient(server.url) as client:
                return await client.submit(clip, idempotency_key="song-1")

        third = asyncio.run(from_async())
        assert first["replayed"] is False
        assert again["replayed"] is True and third["replayed"] is True
        assert first["job_id"] == again["job_id"] == third["job_id"]
    finally:
        fake.release()
