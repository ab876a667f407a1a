"""A Celery worker process: loads its models once, then runs one job at a time.

One worker per device: the solo pool runs the task in the worker process itself, so the model
stays loaded between jobs and there is never a second job on the same GPU. More throughput means
more worker processes (one per GPU), not more concurrency in one.
"""

from __future__ import annotations

import socket
from typing import Any

from celery import Celery
from loguru import logger

from musicsep.config import Settings
from musicsep.scaleout.celery_app import QUEUE, TASK, make_celery
from musicsep.scaleout.celery_service import CeleryJobService
from musicsep.service.job_service import LinkBuilder


def build_worker(settings: Settings, links: LinkBuilder, models: list[str]) -> Celery:
    from musicsep.model.loading import ModelLoader
    from musicsep.service.artifacts import Signer, signing_key

    key = signing_key(settings.signing_key, settings.data_dir)  # before the models: a bad key fails fast
    loader = ModelLoader.from_settings(settings)
    for name in models:
        loader.get(name, settings.device, settings.precision)
        logger.info("model {} loaded", name)
    service = CeleryJobService(settings, loader=loader, signer=Signer(key), links=links)
    app = make_celery(settings)

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
    def separate(job_id: str) -> None:
        service.run_delivered(job_id)

    return app


def worker_argv(name: str | None = None) -> list[str]:
    return [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--queues={QUEUE}",
        f"--hostname={name or f'musicsep@{socket.gethostname()}'}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]


def run_worker(app: Celery, name: str | None = None) -> Any:
    return app.worker_main(worker_argv(name))
