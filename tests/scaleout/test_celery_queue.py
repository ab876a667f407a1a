"""The Celery queue of an API node, without workers: a job whose task cannot be sent.

The job row is written before the task is sent (a worker that takes it must find it). When the
send then fails (the broker went away between the admission check and the send), the job ends
`failed` with `queue_unavailable`, the caller gets 503, and the idempotency key is free again:
was, the key stayed bound to the failed job, so the client's retry with the same key replayed
the failure instead of creating the job.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from musicsep.config import Settings
from musicsep.scaleout.assembly import redis_client, sending_celery
from musicsep.scaleout.celery_queue import BrokerUnavailable, CeleryQueue
from musicsep.scaleout.redis_events import RedisEventLog
from musicsep.scaleout.redis_store import RedisStore
from musicsep.service.artifacts import JobFolders, LocalArtifactStore
from musicsep.service.interfaces import JobQueue
from musicsep.service.job_service import JobService
from musicsep.service.jobs import JobSpec, JobStatus
from musicsep.service.links import Links
from musicsep.service.signing import Signer

pytestmark = pytest.mark.redis

SIGNER = Signer(b"k" * 32)
#: A port nothing listens on: the broker of the API node is down.
DEAD_BROKER = "redis://127.0.0.1:9/13"


def service(settings: Settings, broker_url: str) -> JobService:
    """An API node's service whose Celery sends to `broker_url` (jobs and events in `settings`' Redis)."""
    celery = sending_celery(settings.model_copy(update={"redis_url": broker_url}))
    return JobService(
        settings,
        loader=object(),
        signer=SIGNER,
        store=RedisStore(redis_client(settings), settings.redis_prefix),
        events=RedisEventLog(settings.redis_url, settings.redis_prefix),
        artifacts=LocalArtifactStore(JobFolders(settings.data_dir), SIGNER, Links(None)),
        queue=partial(CeleryQueue, client=redis_client(settings), celery=celery),
    )


def upload(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"RIFF" + name.encode())
    return path


def test_a_job_whose_task_could_not_be_sent_fails_and_frees_its_idempotency_key(redis_url, redis_prefix, tmp_path):
    settings = Settings(
        queue="celery", redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path / "data", webhook_secret=None
    )
    spec = JobSpec(model="tiny", idempotency_key="send-fails")
    down = service(settings, DEAD_BROKER)
    refused = upload(tmp_path, "first.wav")
    with pytest.raises(BrokerUnavailable):
        down.create(spec, refused, filename="first.wav", request_id="req-1")
    assert not refused.exists(), "the refused upload was left on disk"
    [failed] = down.list()
    assert failed.status is JobStatus.FAILED and failed.error["code"] == "queue_unavailable"
    assert [e.type for e in down.events.read(failed.id)] == ["queued", "failed"]
    assert down.store.find_by_idempotency_key("send-fails") is None
    assert not down.artifacts.folders.job_dir(failed.id).exists()

    up = service(settings, redis_url)  # the broker is back: the client's retry with the same key
    assert isinstance(up.admission, JobQueue)
    created = up.create(spec, upload(tmp_path, "again.wav"), filename="again.wav", request_id="req-2")
    assert not created.existing and created.job.id != failed.id
    assert up.get(created.job.id).status is JobStatus.QUEUED
    assert up.store.find_by_idempotency_key("send-fails") == created.job.id
    replay = up.create(spec, upload(tmp_path, "third.wav"), filename="third.wav", request_id="req-3")
    assert (replay.existing, replay.job.id) == (True, created.job.id)
