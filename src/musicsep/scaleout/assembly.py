"""The scale-out backends built from Settings: what `musicsep.composition` asks for when
MUSICSEP_QUEUE=celery (API nodes and workers alike build the same service).

Redis holds the jobs (`RedisStore`) and their events (`RedisEventLog`), Celery the queue
(`CeleryQueue`), and the files stay on the shared data dir (`LocalArtifactStore`) or, with
MUSICSEP_STORAGE=s3, in the bucket (`S3ArtifactStore`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import redis
from celery import Celery

from musicsep.config import Settings
from musicsep.scaleout.celery_app import make_celery
from musicsep.scaleout.celery_queue import CeleryQueue
from musicsep.scaleout.redis_events import RedisEventLog
from musicsep.scaleout.redis_store import RedisStore
from musicsep.scaleout.s3_artifacts import S3ArtifactStore
from musicsep.scaleout.s3_store import S3Bucket
from musicsep.service.artifacts import JobFolders, LinkBuilder, LocalArtifactStore
from musicsep.service.execution import Pipeline
from musicsep.service.interfaces import ArtifactStore
from musicsep.service.job_service import JobService
from musicsep.service.signing import Signer


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)


def sending_celery(settings: Settings) -> Celery:
    """The API side's Celery app: a broker that is down fails a send within seconds (the caller
    gets 503) instead of the worker side's endless reconnecting."""
    celery = make_celery(settings)
    celery.conf.broker_transport_options["socket_connect_timeout"] = 2
    celery.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
    return celery


def artifact_store(settings: Settings, signer: Signer, links: LinkBuilder) -> ArtifactStore:
    folders = JobFolders(settings.data_dir)
    if settings.storage != "s3":
        return LocalArtifactStore(folders, signer, links)
    assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
    bucket = S3Bucket(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url or None, prefix=settings.s3_prefix)
    return S3ArtifactStore(folders, bucket, url_ttl_s=settings.s3_url_ttl_s, signer=signer, links=links)


def scaleout_service(
    settings: Settings, *, loader: Any, signer: Signer, links: LinkBuilder, pipeline: Pipeline | None = None
) -> JobService:
    client = redis_client(settings)
    celery = sending_celery(settings)
    return JobService(
        settings,
        loader=loader,
        signer=signer,
        store=RedisStore(client, settings.redis_prefix),
        events=RedisEventLog(settings.redis_url, settings.redis_prefix),
        artifacts=artifact_store(settings, signer, links),
        queue=partial(CeleryQueue, client=client, celery=celery),
        pipeline=pipeline,
    )
