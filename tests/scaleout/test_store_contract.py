"""One contract for every job store: the embedded SQLite one and the Redis one behave alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from musicsep.service.interfaces import JobStore
from musicsep.service.jobs import Job, JobSpec, JobStatus
from musicsep.service.sqlite_store import DuplicateIdempotencyKey, SqliteStore

OpenStore = Callable[[], Any]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_store(request, tmp_path) -> OpenStore:
    """Opens a store over the same backing data each time it is called (a "restart")."""
    opened: list[Any] = []

    def open_() -> Any:
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "db.sqlite3")
        else:
            from musicsep.scaleout.redis_store import RedisStore

            store = RedisStore.from_url(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def make_job(seq: int, **spec: Any) -> Job:
    return Job(id=f"{seq:032x}", spec=JobSpec(model="tiny_htdemucs", **spec), seq=seq, request_id="req")


def test_every_store_implements_the_interface(open_store):
    assert isinstance(open_store(), JobStore)


def test_a_job_reads_back_as_written_and_survives_a_reopen(open_store):
    job = make_job(1, stems=("vocals", "drums"), priority=5, webhook_url="https://example.org/hook")
    open_store().insert_job(job)
    assert open_store().get_job(job.id) == job
    assert open_store().get_job("f" * 32) is None


def test_updates_change_status_times_and_results(open_store):
    store = open_store()
    job = make_job(1)
    store.insert_job(job)
    job.status, job.started_at, job.attempts = JobStatus.RUNNING, 10.0, 1
    store.update_job(job)
    assert store.get_job(job.id) == job
    job.status, job.finished_at, job.expires_at = JobStatus.COMPLETED, 11.0, 100.0
    job.result = {"stems": {"vocals": {"file": "vocals.wav", "format": "wav16", "bytes": 3}}}
    store.update_job(job)
    assert store.get_job(job.id) == job
    assert store.count_by_status() == {"completed": 1}


def test_an_update_of_an_unknown_job_creates_nothing(open_store):
    store = open_store()
    store.update_job(make_job(7))
    assert store.get_job(make_job(7).id) is None
    assert store.list_jobs() == []
    assert store.count_by_status() == {}


def test_a_repeated_idempotency_key_names_the_first_job(open_store):
    store = open_store()
    first = make_job(1, idempotency_key="abc")
    store.insert_job(first)
    with pytest.raises(DuplicateIdempotencyKey) as raised:
        store.insert_job(make_job(2, idempotency_key="abc"))
    assert raised.value.job_id == first.id
    assert store.find_by_idempotency_key("abc") == first.id
    assert store.find_by_idempotency_key("other") is None
    assert [j.id for j in store.list_jobs()] == [first.id]


def test_listing_is_newest_first_filtered_and_limited(open_store):
    store = open_store()
    jobs = [make_job(seq) for seq in range(1, 7)]
    for job in jobs:
        store.insert_job(job)
    for job in jobs[:2]:
        job.status = JobStatus.FAILED
        store.update_job(job)
    jobs[2].status = JobStatus.RUNNING
    store.update_job(jobs[2])
    assert [j.seq for j in store.list_jobs()] == [6, 5, 4, 3, 2, 1]
    assert [j.seq for j in store.list_jobs(limit=2)] == [6, 5]
    assert [j.seq for j in store.list_jobs([JobStatus.FAILED])] == [2, 1]
    assert [j.seq for j in store.list_jobs([JobStatus.QUEUED, JobStatus.RUNNING], limit=3)] == [6, 5, 4]
    assert store.count_by_status() == {"queued": 3, "running": 1, "failed": 2}
    assert store.next_seq() == 7
    assert open_store().next_seq() == 7


def test_the_next_seq_of_an_empty_store_is_one(open_store):
    assert open_store().next_seq() == 1


def test_expiry_lists_finished_jobs_past_their_time_once(open_store):
    store = open_store()
    old, new = make_job(1), make_job(2)
    for job, expires in ((old, 50.0), (new, 500.0)):
        store.insert_job(job)
        job.status, job.expires_at = JobStatus.COMPLETED, expires
        store.update_job(job)
    assert store.expired_before(100.0) == [old.id]
    old.status = JobStatus.EXPIRED
    store.update_job(old)
    assert store.expired_before(100.0) == []
    assert sorted(store.expired_before(1000.0)) == [new.id]
    assert store.get_job(old.id).status is JobStatus.EXPIRED


def test_one_idempotency_key_raced_from_several_openers_has_one_job(open_store):
    """Two API nodes (here: eight openers of one store) taking one key: one job, every other
    attempt names it. The Redis store claims the key in the job's own transaction."""
    import threading

    stores = [open_store() for _ in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(len(stores))

    def insert(index: int) -> None:
        job = make_job(index + 1, idempotency_key="raced")
        start.wait(timeout=10)
        try:
            stores[index].insert_job(job)
            outcomes.append(f"won:{job.id}")
        except DuplicateIdempotencyKey as dup:
            outcomes.append(f"lost:{dup.job_id}")

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [outcome.split(":")[1] for outcome in outcomes if outcome.startswith("won:")]
    assert len(winners) == 1 and len(outcomes) == len(stores)
    assert {outcome.split(":")[1] for outcome in outcomes} == set(winners)
    assert [job.id for job in stores[0].list_jobs()] == winners
    assert stores[0].find_by_idempotency_key("raced") == winners[0]


def test_update_if_writes_only_what_the_change_accepts(open_store):
    store = open_store()
    job = make_job(1)
    store.insert_job(job)

    def take(current: Job) -> bool:
        if current.status is not JobStatus.QUEUED:
            return False
        current.status, current.attempts = JobStatus.RUNNING, current.attempts + 1
        return True

    taken = store.update_if(job.id, take)
    assert taken is not None and (taken.status, taken.attempts) == (JobStatus.RUNNING, 1)
    assert open_store().get_job(job.id) == taken
    assert store.update_if(job.id, take) is None  # declined: running already
    assert store.get_job(job.id).attempts == 1
    assert store.update_if("f" * 32, take) is None
    assert store.count_by_status() == {"running": 1}


def test_update_if_raced_from_several_openers_lets_exactly_one_win(open_store):
    """A worker taking a job while an API node cancels it: one transition happens, never both."""
    import threading

    job = make_job(1)
    open_store().insert_job(job)
    stores = [open_store() for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[int] = []

    def attempt(index: int) -> None:
        def change(current: Job) -> bool:
            if current.status is not JobStatus.QUEUED:
                return False
            current.status = JobStatus.RUNNING if index % 2 else JobStatus.CANCELLED
            return True

        start.wait(timeout=10)
        if stores[index].update_if(job.id, change) is not None:
            won.append(index)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1
    expected = JobStatus.RUNNING if won[0] % 2 else JobStatus.CANCELLED
    assert open_store().get_job(job.id).status is expected


def test_an_unbound_idempotency_key_creates_a_new_job(open_store):
    """A job that could not be queued gives its key back: the client's retry is a new job."""
    store = open_store()
    failed = make_job(1, idempotency_key="retry-me")
    store.insert_job(failed)
    store.unbind_idempotency_key(failed.id)
    assert store.find_by_idempotency_key("retry-me") is None
    assert store.get_job(failed.id) == failed  # the job itself stays
    retry = make_job(2, idempotency_key="retry-me")
    store.insert_job(retry)
    assert open_store().find_by_idempotency_key("retry-me") == retry.id
    store.unbind_idempotency_key(failed.id)  # the key names another job now: left alone
    assert store.find_by_idempotency_key("retry-me") == retry.id


def test_a_rename_stays_when_a_worker_writes_its_older_copy_of_the_job(open_store):
    store = open_store()
    job = make_job(1)
    job.title = "take 3"
    store.insert_job(job)
    worker_copy = store.get_job(job.id)
    assert worker_copy.title == "take 3"
    assert store.rename_job(job.id, "Final Mix")
    worker_copy.status, worker_copy.started_at = JobStatus.RUNNING, 5.0
    store.update_job(worker_copy)

    def finish(current: Job) -> bool:
        current.status = JobStatus.COMPLETED
        return True

    store.update_if(job.id, finish)
    reopened = open_store()
    assert reopened.get_job(job.id).title == "Final Mix"
    assert reopened.get_job(job.id).status is JobStatus.COMPLETED
    assert [listed.title for listed in reopened.list_jobs()] == ["Final Mix"]
    assert reopened.rename_job(job.id, None)
    assert reopened.get_job(job.id).title is None


def test_a_rename_of_an_unknown_job_changes_nothing(open_store):
    store = open_store()
    assert not store.rename_job("f" * 32, "x")
    assert store.get_job("f" * 32) is None
    assert store.list_jobs() == []


def test_the_model_that_ran_and_why_are_stored_with_the_job(open_store):
    store = open_store()
    job = make_job(1)
    store.insert_job(job)

    def started(current: Job) -> bool:
        current.model_used, current.fallback_reason = "dsp", "no weights — used 'dsp' instead"
        return True

    store.update_if(job.id, started)
    stored = open_store().get_job(job.id)
    assert (stored.model_used, stored.fallback_reason) == ("dsp", "no weights — used 'dsp' instead")
    stored.status = JobStatus.COMPLETED
    store.update_job(stored)
    assert open_store().get_job(job.id).model_used == "dsp"


def test_a_deleted_job_is_gone_everywhere_and_frees_its_idempotency_key(open_store):
    store = open_store()
    gone, kept = make_job(1, idempotency_key="once"), make_job(2)
    gone.status, gone.expires_at = JobStatus.COMPLETED, 10.0
    for job in (gone, kept):
        store.insert_job(job)
    store.update_job(gone)
    store.delete_job(gone.id)
    reopened = open_store()
    assert reopened.get_job(gone.id) is None
    assert [job.id for job in reopened.list_jobs()] == [kept.id]
    assert reopened.list_jobs([JobStatus.COMPLETED]) == []
    assert reopened.count_by_status() == {"queued": 1}
    assert reopened.expired_before(100.0) == []
    assert reopened.find_by_idempotency_key("once") is None
    assert not reopened.rename_job(gone.id, "x")
    again = make_job(3, idempotency_key="once")
    reopened.insert_job(again)
    assert reopened.find_by_idempotency_key("once") == again.id
    reopened.delete_job(gone.id)  # already gone: no error
