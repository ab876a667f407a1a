"""The composition root: the one place that chooses the deployment's backends from Settings.

`MUSICSEP_QUEUE=embedded` (the default) composes `JobService` from SQLite (jobs and events), the
local data dir (files, with the API's signed links) and the in-process queue; `celery` from
scaleout/assembly.py (Redis, Celery, and S3 with `MUSICSEP_STORAGE=s3`), imported only then, so
that an embedded install needs none of the scale-out packages.

Outside the layers on purpose: the API must not import scale-out (import-linter's layer
contract), so `api.app.create_app` receives its service builder from here instead of choosing.
`musicsep serve` and the test harness start the server through `create_app` below
(`uvicorn --factory musicsep.composition:create_app` works too); a test passes its own
`pipeline` (tests/service/fake_pipeline.py) to run the real service around a stepped fake.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from musicsep.config import Settings, get_settings
from musicsep.service.artifacts import JobFolders, LinkBuilder, LocalArtifactStore
from musicsep.service.events import EventLog
from musicsep.service.execution import Pipeline
from musicsep.service.job_service import JobService
from musicsep.service.links import Links
from musicsep.service.local_queue import LocalQueue
from musicsep.service.signing import Signer, signing_key
from musicsep.service.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from fastapi import FastAPI


def embedded_service(
    settings: Settings, *, loader: Any, signer: Signer, links: LinkBuilder, pipeline: Pipeline | None = None
) -> JobService:
    """One process: SQLite, the data dir, the in-process priority queue and its threads."""
    sqlite = SqliteStore(settings.data_dir / "musicsep.sqlite3", job_folders=settings.data_dir / "jobs")
    return JobService(
        settings,
        loader=loader,
        signer=signer,
        store=sqlite,
        events=EventLog(sqlite),
        artifacts=LocalArtifactStore(JobFolders(settings.data_dir), signer, links),
        queue=LocalQueue,
        pipeline=pipeline,
    )


def build_service(settings: Settings, *, loader: Any, pipeline: Pipeline | None = None) -> JobService:
    """The job service of the deployment `settings` describe (SigningKeyRefused for a bad key)."""
    signer = Signer(signing_key(settings.signing_key, settings.data_dir))
    links = Links(settings.public_url)
    if settings.queue == "celery":
        from musicsep.scaleout.assembly import scaleout_service

        return scaleout_service(settings, loader=loader, signer=signer, links=links, pipeline=pipeline)
    return embedded_service(settings, loader=loader, signer=signer, links=links, pipeline=pipeline)


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """The HTTP application over the deployment's service; `pipeline` replaces the real one (tests)."""
    from musicsep.api.app import create_app as create_api_app

    return create_api_app(settings or get_settings(), build_service=partial(build_service, pipeline=pipeline))
