"""The backends one `JobService` is composed of: everything that differs between deployments.

| protocol        | embedded (one process)             | scale-out (Celery, Redis, S3)                      |
|-----------------|------------------------------------|----------------------------------------------------|
| `JobStore`      | `sqlite_store.SqliteStore`         | `scaleout.redis_store.RedisStore`                  |
| `JobEventLog`   | `events.EventLog` (on SQLite)      | `scaleout.redis_events.RedisEventLog`              |
| `ArtifactStore` | `artifacts.LocalArtifactStore`     | `scaleout.s3_artifacts.S3ArtifactStore` (storage=s3) |
| `JobQueue`      | `local_queue.LocalQueue`           | `scaleout.celery_queue.CeleryQueue`                |

Scale-out without a bucket keeps the files on the shared data dir with `LocalArtifactStore`.
`musicsep.composition` chooses them once from Settings. The service code above them never asks
which deployment it runs in: a difference that is not behind one of these methods is a bug.
The contract suites in tests/scaleout/test_*_contract.py hold every implementation to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from musicsep.service.artifacts import JobFolders, StemDownload, StemOpener
from musicsep.service.events import Event
from musicsep.service.health import Health
from musicsep.service.jobs import Job, JobStatus
from musicsep.service.live import LiveState


@runtime_checkable
class JobStore(Protocol):
    """Job records: one per job, found by id or idempotency key, listed newest first."""

    def next_seq(self) -> int: ...
    def insert_job(self, job: Job) -> None:
        """Write a new job; DuplicateIdempotencyKey when its key names another job already."""

    def update_job(self, job: Job) -> None: ...

    def update_if(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Read, change and write one job atomically: `change` mutates it and returns True to
        write; the written job, or None (missing, or declined). Where two processes can race for
        one transition (a worker taking a job while an API node cancels it), exactly one wins."""

    def unbind_idempotency_key(self, job_id: str) -> None:
        """Free the job's idempotency key (a job that could not be queued must not answer its repeats)."""

    def rename_job(self, job_id: str, title: str | None) -> bool:
        """Set the title alone; False when there is no such job. `update_job` and `update_if`
        never write the title, so a worker holding an older copy of the job keeps a rename."""

    def delete_job(self, job_id: str) -> None:
        """Remove the job and its idempotency key; a missing job is no error."""

    def get_job(self, job_id: str) -> Job | None: ...
    def find_by_idempotency_key(self, key: str) -> str | None: ...
    def list_jobs(self, statuses: Iterable[JobStatus] | None = None, limit: int = 100) -> list[Job]: ...
    def count_by_status(self) -> dict[str, int]: ...
    def expired_before(self, now: float) -> list[str]: ...
    def close(self) -> None: ...


@runtime_checkable
class JobEventLog(Protocol):
    """Each job's events, ids 1, 2, 3 … without gaps; replayed from any id, followed live."""

    def append(self, job_id: str, type_: str, payload: dict[str, Any]) -> Event: ...
    def read(self, job_id: str, after: int = 0, limit: int | None = None) -> list[Event]: ...
    def last(self, job_id: str) -> Event | None: ...
    def follow(self, job_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """Batches of events after `after` until (and including) the terminal one. A store that
        fails mid-follow raises ServiceUnavailable, which the SSE stream ends with in-band."""

    def forget(self, job_id: str) -> None: ...


@runtime_checkable
class LiveAudio(Protocol):
    """A running job's live segments (service/live.py): written by the worker that runs the job,
    read by any API node. Local files (`live.LocalLiveAudio`) or bucket objects
    (`scaleout.live_s3.S3LiveAudio`)."""

    def put_segment(self, job_id: str, stem: str, index: int, data: bytes) -> None:
        """Keep segment `index` of `stem` (interleaved float32); segments come in order."""

    def put_state(self, job_id: str, state: LiveState) -> None:
        """Replace the job's live state whole (after the segments it counts are kept)."""

    def state(self, job_id: str) -> LiveState | None: ...

    def segment(self, job_id: str, state: LiveState, stem: str, index: int) -> bytes:
        """A kept segment's samples; KeyError when it is gone."""

    def ended(self, job_id: str, at: float) -> None:
        """The job ended at `at`: its segments are removed `live_grace_s` later (`sweep`)."""

    def sweep(self, ended_before: float) -> int:
        """Remove the segments of jobs that ended before `ended_before`; how many jobs."""

    def remove(self, job_id: str) -> None: ...


@runtime_checkable
class ArtifactStore(Protocol):
    """A job's input and stems, and the links that fetch the stems.

    The pipeline always works on local folders (`folders`); the store moves what it must
    between them and where the files are kept (the same folders, or a bucket).
    """

    folders: JobFolders

    @property
    def live(self) -> LiveAudio:
        """The jobs' live segments while they run (and `live_grace_s` after)."""

    def accept_input(self, job_id: str, upload: Path) -> None:
        """Take the uploaded file as the job's input (moved, not copied)."""

    def fetch_input(self, job_id: str) -> bool:
        """Make the input available at `folders.input_path(job_id)`; False when it is lost."""

    def store_stems(self, job_id: str, stems: Mapping[str, Path], media_type: str) -> None:
        """Keep the finished stems (written in `folders.stems_dir`) where downloads find them."""

    def release_local(self, job_id: str) -> None:
        """An attempt has ended: drop the local copies that are not where the files are kept."""

    def stem_links(self, job: Job) -> dict[str, dict[str, Any]]:
        """{stem name: {url, format, bytes, preview_url, peaks_url}} of a completed job, valid until
        it expires (the preview links None for a stem without previews)."""

    def zip_link(self, job: Job) -> str:
        """The link of the zip of every stem (always served by the API node)."""

    def mix_link(self, job: Job) -> str:
        """The link a mix of the stems is POSTed to (always served by the API node)."""

    def stem_download(self, job: Job, name: str) -> StemDownload:
        """Where stem `name`'s bytes are (a local file or a URL to redirect to); KeyError if none."""

    def preview_download(self, job: Job, name: str, kind: str) -> StemDownload:
        """Where stem `name`'s "preview" or "peaks" file is (a local file, or an opener the API
        streams from); KeyError when the stem has none or it is gone."""

    def stem_openers(self, job: Job) -> dict[str, StemOpener]:
        """An opener per stem file name, for the zip; each checked now (KeyError when one is gone)."""

    def local_stems(self, job: Job) -> AbstractContextManager[dict[str, Path]]:
        """{stem name: a local file of it} for the block (a mix reads them): the kept files, or
        copies downloaded into a temporary folder that the block's end removes; KeyError when
        one is gone."""

    def clear_stems(self, job_id: str) -> None: ...
    def remove_input(self, job_id: str) -> None: ...
    def remove(self, job_id: str) -> None:
        """Every file of the job, wherever kept (expiry, cancel of a queued job)."""


@runtime_checkable
class JobQueue(Protocol):
    """Admission and dispatch: whether a job may be taken now, where it waits, where it runs.

    Embedded: an in-process priority queue and semaphore whose jobs run in this process's
    threads. Scale-out: a Celery queue whose jobs run in worker processes.
    """

    @property
    def slots(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def running(self) -> frozenset[str]: ...
    @property
    def live_threads(self) -> int:
        """Threads of this process inside a pipeline right now (0 where jobs run elsewhere)."""

    def check(self, *, wait: bool = True) -> None:
        """Raise QueueFull, NoFreeSlot or ServiceUnavailable when a new job would be refused."""

    def enqueue(self, job: Job) -> None:
        """Queue a stored job and append its first `queued` event; ServiceUnavailable when it
        could not be queued (the job row is written already: the caller fails it)."""

    def position(self, job_id: str) -> int | None: ...

    def cancel(self, job_id: str, reason: str) -> bool:
        """True when the job was still queued and is now out of the queue (the caller ends it);
        False when it runs (it is told to stop within one chunk) or is not known here."""

    def hold_slot(self) -> AbstractAsyncContextManager[None]:
        """A run slot for a model load, held for the block (waits behind the queue)."""

    def health(self) -> Health: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
