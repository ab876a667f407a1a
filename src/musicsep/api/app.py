"""The FastAPI application over a job service (started through `musicsep.composition.create_app`).

Nothing is built at import time. The lifespan builds the model loader, has the job service built
by the composition root's `build_service` (which chooses the backends: the API never does), starts
it (recovering jobs left by a previous process), and hands everything to the routes through
`app.state` (read by the dependencies in deps.py).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from loguru import logger

from musicsep import __version__
from musicsep.api import errors
from musicsep.api.body_limit import BodyLimitMiddleware
from musicsep.api.request_id import RequestIdMiddleware
from musicsep.api.routes import downloads, jobs, live, separate, system
from musicsep.api.stream_slots import StreamSlots
from musicsep.api.stream_slots import register_metrics as register_stream_metrics
from musicsep.api.upload_folder import UploadFolder
from musicsep.api.uploads import FORM_OVERHEAD_BYTES
from musicsep.config import Settings
from musicsep.service.job_service import JobService
from musicsep.service.links import Links

#: Builds the job service for `settings` around a model `loader` (musicsep.composition.build_service).
ServiceBuilder = Callable[..., JobService]

DESCRIPTION = """Separate songs into stems with Demucs, with progress streamed over Server-Sent Events.

Upload with `POST /api/v1/jobs` (202, then follow `events_url`) or `POST /api/v1/separate`
(the events come in the response). Every error is `{"error": {"code", "message", "request_id"}}`.
"""

#: The web page (docs/web.md): static files that use the public API like any other client.
WEB_DIR = Path(__file__).resolve().parents[1] / "web"


def create_app(settings: Settings, *, build_service: ServiceBuilder) -> FastAPI:
    """`build_service(settings, loader=...)` is called in the lifespan, once per start."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from musicsep.model.loading import HOW_TO_GET_WEIGHTS, ModelLoader, resolve_device

        # Resolved once (it imports torch): an absent CUDA device fails the start, not a request.
        app.state.device = str(await anyio.to_thread.run_sync(resolve_device, settings.device))
        loader = ModelLoader.from_settings(settings)
        if not await anyio.to_thread.run_sync(loader.is_available, settings.default_model):
            logger.warning(
                "Demucs weights for '{}' are not on this machine: jobs will use the first model of "
                "the fallback chain that is ({}). To get them, {}.",
                settings.default_model,
                ", ".join(settings.fallback_chain) or "none: jobs fail",
                HOW_TO_GET_WEIGHTS.format(name=settings.default_model),
            )
        service = build_service(settings, loader=loader)
        for name in settings.preload:
            await anyio.to_thread.run_sync(loader.get, name, settings.device, settings.precision)
            logger.info("model {} loaded", name)
        await service.start()
        app.state.uploads = UploadFolder(settings.data_dir)  # sweeps what a killed process left
        app.state.service = service
        register_stream_metrics(service.metrics.registry, app.state.stream_slots)
        # torch, Demucs, librosa and the loaded models leave ~200k long-lived objects that every
        # full collection would walk again: ~100 ms with the event loop stopped, which was the
        # whole p99 of first SSE bytes (docs/server.md). Moving them out of the collector's
        # generations keeps each collection to what requests allocate.
        gc.freeze()
        logger.info("musicsep ready: {} slot(s), queue of {}", settings.max_concurrent, settings.queue_size)
        try:
            yield
        finally:
            await service.stop()
            app.state.uploads.close()

    # /docs and /redoc as FastAPI serves them, but with Swagger UI's and ReDoc's files served from
    # /static-offline-docs instead of a CDN, so that they work from a browser without internet.
    # fastapi-offline (maintained: its 2026-06 release ships Swagger UI 5 and ReDoc 2 bundles) builds
    # the app with those pages and mounts its copy of the files.
    app = FastAPIOffline(
        title="musicsep",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI's default sends the schema's URL to validator.swagger.io for a badge: the only
        # request the page would still make outside the server.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.links = Links(settings.public_url)
    app.state.stream_slots = StreamSlots(settings.sse_max_streams_per_job, settings.sse_max_streams_per_caller)
    errors.install(app)
    for module in (jobs, separate, downloads, live, system):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_api_route("/", lambda: FileResponse(WEB_DIR / "index.html"), include_in_schema=False)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID", "X-Request-Id"],
            expose_headers=[
                "X-Request-Id",
                "Retry-After",
                "Content-Disposition",
                "X-Musicsep-Ready-Frames",
                "X-Musicsep-Live-Level",
            ],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.max_upload_mb * 1024 * 1024) + FORM_OVERHEAD_BYTES)
    # Added last = outermost: every response, errors and CORS preflights included, gets the id.
    app.add_middleware(RequestIdMiddleware)
    return app
