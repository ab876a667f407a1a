"""The job service on its own: admission, positions, cancel, restart recovery and the event log.

A real `JobService` (SQLite store and event log in tmp_path, real admission, real worker
threads) with the stepped fake pipeline of fake_pipeline.py in place of the model: the test says
when each job starts a chunk, finishes or fails, so every ordering here is decided by the test,
not by timing, and the whole module runs in well under a second. No uvicorn and no torch: the
subprocess test at the end proves that the service path imports neither.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from musicsep.composition import embedded_service
from musicsep.config import Settings
from musicsep.model.errors import InvalidAudio
from musicsep.service.admission import NoFreeSlot, QueueFull
from musicsep.service.events import Event
from musicsep.service.idempotency import IdempotencyConflict
from musicsep.service.interfaces import JobQueue
from musicsep.service.job_service import JobExpired, JobService
from musicsep.service.jobs import Job, JobSpec, JobStatus
from musicsep.service.signing import Signer
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath

pytestmark = pytest.mark.anyio

#: Longest any wait on the service may take before the test fails (each normally takes < 10 ms).
TIMEOUT_S = 10.0
#: The pipeline receives the service's loader untouched; the fake never loads anything.
LOADER = object()
_uploads = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the service is written against asyncio (tasks, call_soon_threadsafe)


def link(job_id: str, name: str, expires: int, sig: str) -> str:
    return f"/api/v1/jobs/{job_id}/stems/{name}?expires={expires}&sig={sig}"


def build(data_dir: Path, pipeline: SteppedPipeline, **overrides: Any) -> JobService:
    settings = Settings(
        **{
            "data_dir": data_dir,
            "max_concurrent": 1,
            "queue_size": 4,
            "max_attempts": 2,
            "webhook_secret": None,
            **overrides,
        }
    )
    return embedded_service(settings, loader=LOADER, signer=Signer(b"k" * 32), links=link, pipeline=pipeline)


@asynccontextmanager
async def serving(service: JobService, pipeline: SteppedPipeline) -> AsyncIterator[JobService]:
    """The service started; on the way out any job still in the fake is ended and the service stopped."""
    await service.start()
    try:
        yield service
    finally:
        pipeline.release()
        await asyncio.wait_for(service.stop(), TIMEOUT_S)


def running(data_dir: Path, pipeline: SteppedPipeline, **overrides: Any) -> AbstractAsyncContextManager[JobService]:
    return serving(build(data_dir, pipeline, **overrides), pipeline)


def submit(service: JobService, folder: Path, *, wait: bool = True, **spec: Any) -> Job:
    """Create a job for a fresh upload of a few bytes (the pipeline is a fake: they need not be audio)."""
    upload = folder / f"upload{next(_uploads)}"
    upload.write_bytes(b"RIFF" + upload.name.encode())
    return service.create(
        JobSpec(**{"model": "tiny", **spec}), upload, filename="song.wav", request_id="req-test", wait=wait
    ).job


def log(service: JobService, job_id: str) -> list[Event]:
    return service.events.read(job_id)


def positions_in(events: list[Event]) -> list[int]:
    """The places a job's `queued` events announced, in order."""
    return [e.data["position"] for e in events if e.type == "queued"]


def positions(service: JobService, job_id: str) -> list[int]:
    return positions_in(log(service, job_id))


async def follow(service: JobService, job_id: str, after: int = 0) -> list[Event]:
    """Everything a reader at cursor `after` gets, to the end of the follow (the terminal event)."""

    async def read() -> list[Event]:
        return [event async for batch in service.follow(job_id, after) for event in batch]

    return await asyncio.wait_for(read(), TIMEOUT_S)


async def run_to_end(service: JobService, fake: SteppedPipeline, job_id: str) -> list[Event]:
    await fake.finish(job_id)
    events = await follow(service, job_id)
    assert events[-1].type == "completed", events[-1].data
    return events


def started_after_ended(service: JobService, first: str, then: str) -> bool:
    """The runner's own thread records: `then`'s worker thread began after `first`'s had returned."""
    records = service.admission.runner.records()
    first_end = max(r.at for r in records if r.job_id == first and r.what == "end")
    then_start = min(r.at for r in records if r.job_id == then and r.what == "start")
    return first_end <= then_start


async def one_job_to_the_end(data_dir: Path) -> list[str]:
    """A job from admission to `completed` (the subprocess import check runs this)."""
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(data_dir, fake) as service:
        job = submit(service, data_dir.parent)
        await fake.emit_progress(job.id, 50.0)
        return [event.type for event in await run_to_end(service, fake, job.id)]


# --- admission ----------------------------------------------------------------------------
async def test_one_slot_runs_one_job_and_the_next_starts_only_after_its_thread_ended(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, max_concurrent=1) as service:
        assert isinstance(service.admission, JobQueue)
        first, second = submit(service, tmp_path), submit(service, tmp_path)
        await fake.started(first.id)
        assert service.get(first.id).status is JobStatus.RUNNING
        assert service.get(second.id).status is JobStatus.QUEUED
        assert (service.position(second.id), fake.order, service.admission.runner.live) == (1, [first.id], 1)
        assert fake.call_of(first.id).input_bytes.startswith(b"RIFF"), "the upload did not reach the pipeline"
        assert fake.call_of(first.id).loader is LOADER

        await run_to_end(service, fake, first.id)
        await fake.started(second.id)
        assert fake.order == [first.id, second.id]
        assert started_after_ended(service, first.id, second.id)
        await run_to_end(service, fake, second.id)
        assert service.admission.runner.live == 0


async def test_two_slots_run_two_jobs_at_once_and_queue_the_third(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, max_concurrent=2) as service:
        jobs = [submit(service, tmp_path) for _ in range(3)]
        await fake.started(jobs[0].id)
        await fake.started(jobs[1].id)
        assert service.admission.runner.live == 2
        assert positions(service, jobs[0].id) == positions(service, jobs[1].id) == [0]
        assert positions(service, jobs[2].id) == [1]
        await run_to_end(service, fake, jobs[1].id)
        await fake.started(jobs[2].id)
        assert sorted(fake.order) == sorted(job.id for job in jobs)


async def test_a_full_queue_refuses_at_once_and_keeps_nothing_of_the_refused_job(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, max_concurrent=1, queue_size=2) as service:
        running_job = submit(service, tmp_path)
        with pytest.raises(NoFreeSlot):  # wait=false: the only slot is taken, though the queue has room
            submit(service, tmp_path, wait=False)
        queued = [submit(service, tmp_path) for _ in range(2)]

        refused_upload = tmp_path / "refused.wav"
        refused_upload.write_bytes(b"RIFF")
        with pytest.raises(QueueFull) as refused:
            service.create(JobSpec(model="tiny"), refused_upload, filename="x.wav", request_id=None)
        assert refused.value.retry_after_s > 0
        assert not refused_upload.exists(), "the refused upload was left on disk"
        assert len(service.list()) == 3 and service.admission.depth == 2
        assert service.health().queue_depth == 2 and service.health().running == 1

        service.cancel(queued[0].id, "by test")  # a place frees up: the next job is admitted behind
        latecomer = submit(service, tmp_path)
        assert service.position(latecomer.id) == 2
        await fake.started(running_job.id)
        assert fake.order == [running_job.id]


async def test_a_priority_5_job_overtakes_older_priority_3_jobs(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        first = submit(service, tmp_path)
        older = [submit(service, tmp_path, priority=3) for _ in range(2)]
        urgent = submit(service, tmp_path, priority=5)
        # The urgent job goes in front, and every job it passed is told its new place.
        assert positions(service, urgent.id) == [1]
        assert positions(service, older[0].id) == [1, 2]
        assert positions(service, older[1].id) == [2, 3]

        for job in (first, urgent, older[0], older[1]):
            await run_to_end(service, fake, job.id)
        assert fake.order == [first.id, urgent.id, older[0].id, older[1].id]
        assert positions(service, older[1].id) == [2, 3, 2, 1]


async def test_queued_positions_move_up_as_the_jobs_ahead_finish(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        jobs = [submit(service, tmp_path) for _ in range(4)]
        assert [service.position(job.id) for job in jobs] == [None, 1, 2, 3]
        await run_to_end(service, fake, jobs[0].id)
        assert [service.position(job.id) for job in jobs] == [None, None, 1, 2]
        assert positions(service, jobs[3].id) == [3, 2]
        await run_to_end(service, fake, jobs[1].id)
        await run_to_end(service, fake, jobs[2].id)
        last = await run_to_end(service, fake, jobs[3].id)
        assert [(e.type, e.data.get("position")) for e in last[:4]] == [
            ("queued", 3),
            ("queued", 2),
            ("queued", 1),
            ("started", None),
        ]


# --- cancel -------------------------------------------------------------------------------
async def test_cancelling_a_queued_job_ends_it_at_once_and_moves_the_jobs_behind_it_up(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        first, doomed, behind = (submit(service, tmp_path) for _ in range(3))
        service.cancel(doomed.id, "by test")
        # No await in between: the job ended in the call itself.
        assert service.get(doomed.id).status is JobStatus.CANCELLED
        assert [(e.type, e.data) for e in log(service, doomed.id)] == [
            ("queued", {"event": "queued", "position": 1}),
            ("cancelled", {"event": "cancelled", "reason": "by test"}),
        ]
        assert positions(service, behind.id) == [2, 1]

        await run_to_end(service, fake, first.id)
        await run_to_end(service, fake, behind.id)
        assert doomed.id not in fake.order, "a cancelled job reached the pipeline"
        assert service.cancel(doomed.id, "again").status is JobStatus.CANCELLED
        assert [e.type for e in log(service, doomed.id)][-1] == "cancelled"


async def test_cancelling_a_running_job_stops_it_at_its_next_chunk_and_only_then_frees_the_slot(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        job, behind = submit(service, tmp_path), submit(service, tmp_path)
        await fake.emit_progress(job.id, 10.0)
        service.cancel(job.id, "client disconnected")
        await fake.cancel_requested(job.id)
        # Until the engine reaches a chunk boundary its thread still separates: it keeps the slot.
        assert service.get(job.id).status is JobStatus.RUNNING
        assert service.position(behind.id) == 1 and fake.order == [job.id]

        await fake.emit_progress(job.id, 20.0)  # the next chunk sees the flag and stops
        events = await follow(service, job.id)
        assert (events[-1].type, events[-1].data["reason"]) == ("cancelled", "client disconnected")
        assert [e.data["percent"] for e in events if e.type == "progress"] == [10.0]
        assert not list(service.artifacts.folders.stems_dir(job.id).glob("*")), "a cancelled job left stems"
        await fake.started(behind.id)
        assert started_after_ended(service, job.id, behind.id)
        await run_to_end(service, fake, behind.id)


async def test_a_pipeline_error_fails_the_job_in_its_own_words_and_an_unexpected_one_generically(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, max_concurrent=2) as service:
        typed, unexpected = submit(service, tmp_path), submit(service, tmp_path)
        await fake.fail(typed.id, InvalidAudio("the file holds no audio stream"))
        await fake.fail(unexpected.id, RuntimeError("boom in /srv/musicsep/secret/path.py"))
        assert (await follow(service, typed.id))[-1].data == {
            "event": "failed",
            "code": "invalid_audio",
            "message": "the file holds no audio stream",
        }
        failed = (await follow(service, unexpected.id))[-1].data
        assert failed["code"] == "internal_error" and "req-test" in failed["message"]
        assert "/srv" not in failed["message"] and "boom" not in failed["message"]


# --- restart recovery ---------------------------------------------------------------------
async def crash_snapshot(tmp_path: Path) -> tuple[Path, str, str]:
    """The data dir as a `kill -9` mid-job leaves it: one job `running` (one progress event in),
    one queued behind it. Copied while the loop is between writes (every write happens on the loop
    thread, and the fake writes nothing), so the copy is exactly what was committed."""
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        job, behind = submit(service, tmp_path), submit(service, tmp_path)
        await fake.emit_progress(job.id, 40.0)
        shutil.copytree(tmp_path / "data", tmp_path / "crashed")
    return tmp_path / "crashed", job.id, behind.id


def assert_ids_without_gaps(events: list[Event]) -> None:
    assert [e.id for e in events] == list(range(1, len(events) + 1))


async def test_a_job_running_when_the_server_died_runs_again_from_the_start_on_the_next_start(tmp_path):
    data_dir, job_id, behind_id = await crash_snapshot(tmp_path)
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(data_dir, fake, max_attempts=2) as service:
        await fake.started(job_id)
        assert fake.call_of(job_id).input_bytes.startswith(b"RIFF"), "the re-run lost its input"
        events = await run_to_end(service, fake, job_id)
        behind = await run_to_end(service, fake, behind_id)
        assert fake.order == [job_id, behind_id]
        assert service.get(job_id).attempts == 2

    assert_ids_without_gaps(events)
    assert [e.type for e in events[:5]] == ["queued", "started", "progress", "queued", "started"]
    assert "restarted" in events[3].data["reason"]
    assert_ids_without_gaps(behind)
    assert positions_in(behind) == [1, 1]  # told its place again after the restart


async def test_a_job_that_died_with_the_server_max_attempts_times_fails_worker_lost(tmp_path):
    data_dir, job_id, behind_id = await crash_snapshot(tmp_path)
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(data_dir, fake, max_attempts=1) as service:
        failed = (await follow(service, job_id))[-1]
        assert (failed.type, failed.data["code"]) == ("failed", "worker_lost")
        assert service.get(job_id).status is JobStatus.FAILED
        await run_to_end(service, fake, behind_id)  # the job behind it is not held up
        assert fake.order == [behind_id]


async def test_a_graceful_stop_puts_the_running_job_back_in_the_queue_without_counting_the_attempt(tmp_path):
    data_dir = tmp_path / "data"
    fake = SteppedPipeline(TIMEOUT_S)
    service = build(data_dir, fake)
    await service.start()
    job = submit(service, tmp_path)
    await fake.emit_progress(job.id, 30.0)
    stopping = asyncio.ensure_future(service.stop())
    await fake.cancel_requested(job.id)  # stop raised every running job's cancel flag
    await fake.emit_progress(job.id, 60.0)  # its next chunk sees it
    await asyncio.wait_for(stopping, TIMEOUT_S)

    again = SteppedPipeline(TIMEOUT_S)
    service = build(data_dir, again)
    left = service.get(job.id)
    assert (left.status, left.attempts) == (JobStatus.QUEUED, 0)
    async with serving(service, again):
        events = await run_to_end(service, again, job.id)
        assert service.get(job.id).attempts == 1
    assert_ids_without_gaps(events)
    # It ran again from the start; the stop itself appended nothing (no terminal event).
    assert [e.type for e in events[:4]] == ["queued", "started", "progress", "started"]


# --- the event log ------------------------------------------------------------------------
async def test_the_log_replays_from_any_id_exactly_the_rest_and_ends_with_the_terminal_event(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        job = submit(service, tmp_path, two_stems="vocals")
        live = asyncio.ensure_future(follow(service, job.id))  # a reader there from the start
        for percent in (25.0, 50.0, 75.0):
            await fake.emit_progress(job.id, percent)
        await run_to_end(service, fake, job.id)
        events = log(service, job.id)
        n = len(events)

        assert [e.type for e in events] == [
            "queued",
            "started",
            "progress",
            "progress",
            "progress",
            "analysis",
            "stem",
            "stem",
            "completed",
        ]
        assert_ids_without_gaps(events)
        assert [e.id for e in await live] == list(range(1, n + 1))
        for after in range(n):
            assert [e.id for e in await follow(service, job.id, after)] == list(range(after + 1, n + 1))
        assert await follow(service, job.id, n) == []  # it has the terminal event already
        assert [e.id for e in await follow(service, job.id, n + 7)] == [n]  # a cursor past the end
        assert service.finished_with(job.id).id == n

        stems = {e.data["name"]: e.data for e in events if e.type == "stem"}
        assert set(stems) == {"vocals", "no_vocals"} == set(events[-1].data["stems"])
        assert stems["vocals"]["url"].startswith(f"/api/v1/jobs/{job.id}/stems/vocals?expires=")
        assert stems["vocals"]["bytes"] == service.stem_download(job.id, "vocals").path.stat().st_size > 44


# --- expiry and downloads ---------------------------------------------------------------
async def test_a_result_past_its_ttl_loses_files_and_events_and_reads_as_expired(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, result_ttl_s=60) as service:
        job, behind = submit(service, tmp_path), submit(service, tmp_path)
        await run_to_end(service, fake, job.id)
        done = service.get(job.id)
        assert service.zip_link(done) is not None
        assert set(service.stem_files(job.id)) == {f"{name}.wav" for name in ("drums", "bass", "other", "vocals")}
        assert service.cleanup_expired(now=done.expires_at - 1) == 0
        assert service.cleanup_expired(now=done.expires_at + 1) == 1
        with pytest.raises(JobExpired):
            service.get(job.id)
        assert service.events.read(job.id) == []
        assert not service.artifacts.folders.job_dir(job.id).exists()
        assert service.get(behind.id).status is JobStatus.RUNNING, "a job still running was expired"
        assert service.zip_link(service.get(behind.id)) is None


async def test_a_cancelled_queued_job_leaves_no_files_and_a_stem_name_it_lacks_is_a_key_error(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake) as service:
        first, queued = submit(service, tmp_path), submit(service, tmp_path)
        assert service.artifacts.folders.input_path(queued.id).exists()
        service.cancel(queued.id, "by test")
        assert not service.artifacts.folders.job_dir(queued.id).exists()
        await run_to_end(service, fake, first.id)
        with pytest.raises(KeyError):
            service.stem_download(first.id, "guitar")
        assert service.stem_download(first.id, "bass").format == "wav16"


# --- idempotency --------------------------------------------------------------------------
async def test_a_repeated_idempotency_key_is_the_first_job_even_with_the_queue_full(tmp_path):
    fake = SteppedPipeline(TIMEOUT_S)
    async with running(tmp_path / "data", fake, queue_size=1) as service:
        first = submit(service, tmp_path, idempotency_key="key-1")
        submit(service, tmp_path)  # the queue is full now
        again = tmp_path / "again.wav"
        again.write_bytes(b"RIFF")
        replay = service.create(first.spec, again, filename="song.wav", request_id=None)
        assert (replay.job.id, replay.existing) == (first.id, True)
        assert not again.exists()
        with pytest.raises(IdempotencyConflict) as conflict:  # the API answers 409 with the first job's id
            submit(service, tmp_path, idempotency_key="key-1", format="flac")
        assert conflict.value.job_id == first.id
        with pytest.raises(QueueFull):
            submit(service, tmp_path, idempotency_key="key-2")
        assert len(service.list()) == 2


# --- what the service imports ---------------------------------------------------------------
def test_the_service_runs_a_job_without_importing_torch_or_uvicorn(tmp_path):
    """In a fresh interpreter: the other tests of a session import both, which would hide it."""
    script = (
        "import asyncio, json, pathlib, sys\n"
        "import service.test_job_service as t\n"
        f"kinds = asyncio.run(t.one_job_to_the_end(pathlib.Path({str(tmp_path / 'data')!r})))\n"
        "heavy = ['torch', 'uvicorn', 'fastapi', 'starlette', 'demucs', 'librosa']\n"
        "print(json.dumps([kinds, [name for name in heavy if name in sys.modules]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    kinds, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert kinds[-1] == "completed"
    assert imported == []
