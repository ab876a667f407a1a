"""Health, Prometheus metrics and the model catalog (whether each model is installed here, how fast
it has run here, its published quality; load/reload on a device)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Body, Path, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from musicsep.api.deps import Authenticated, ServiceDep, SettingsDep
from musicsep.api.schemas import ERROR_RESPONSES, HealthPublic, ModelList, ModelLoaded, ModelLoadForm, ModelPublic
from musicsep.model.catalog import load_catalog
from musicsep.model.names import MODEL_NAME_PATTERN
from musicsep.service import model_loads
from musicsep.service.job_service import JobService

router = APIRouter(responses=ERROR_RESPONSES)


class QualityPublic(BaseModel):
    """A published quality figure: SDR in dB per stem (or `average`), on one basis, from one source."""

    sdr: dict[str, float]
    basis: str = Field(description="The test set the figure was measured on (figures on other bases do not compare).")
    source: str


class SpeedPublic(BaseModel):
    """How fast the model separated on this server: audio seconds per wall second of separation."""

    realtime_factor: float = Field(description="Audio seconds separated per second (10: a minute in 6 s).")
    jobs: int = Field(description="The completed jobs it is measured over (the server's most recent ones).")


class CatalogModelPublic(ModelPublic):
    """ModelPublic plus the engine family, the published quality and an ensemble's models (additive fields)."""

    arch: str = Field(description="demucs, mdx, bs_roformer, mel_band_roformer, mdx23c, dsp or ensemble.")
    quality: QualityPublic | None = None
    members: list[str] | None = Field(default=None, description="The models an ensemble preset combines.")
    installed: bool = Field(
        default=False, description="Every weight file is on this server (found by file name: nothing is loaded)."
    )
    speed: SpeedPublic | None = Field(
        default=None, description="Measured from this server's completed jobs of the model; null before its first."
    )
    quality_note: str | None = Field(default=None, description="The published quality in one line, for people.")


class CatalogList(ModelList):
    models: list[CatalogModelPublic]  # type: ignore[assignment]  # the same list, each entry with more fields


@router.get(
    "/health",
    response_model=HealthPublic,
    tags=["system"],
    summary="Liveness, load and dependencies",
    responses={503: {"model": HealthPublic, "description": "A dependency of this node is down"}},
)
async def health(request: Request, response: Response, service: ServiceDep) -> HealthPublic:
    report = service.health()
    if not report.ok:
        response.status_code = 503
    return HealthPublic(
        status="ok" if report.ok else "unavailable",
        device=request.app.state.device,
        models_loaded=service.loader.loaded(),
        queue_depth=report.queue_depth,
        running=report.running,
        slots=report.slots,
        dependencies=report.dependencies,
    )


@router.get(
    "/metrics", tags=["system"], dependencies=[Authenticated], summary="Prometheus metrics", response_class=Response
)
async def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/v1/models",
    response_model=CatalogList,
    tags=["models"],
    dependencies=[Authenticated],
    summary="The models this server knows",
)
async def list_models(service: ServiceDep, settings: SettingsDep) -> CatalogList:
    # In a thread: finding weight files lists folders and caches, and the speeds read the job store.
    return await anyio.to_thread.run_sync(_catalog, service, settings.default_model)


def _catalog(service: JobService, default: str) -> CatalogList:
    loaded = set(service.loader.loaded())
    speeds = service.model_speeds()
    models = [
        CatalogModelPublic(
            name=info.name,
            stems=list(info.stems),
            description=info.description,
            loaded=info.name in loaded,
            arch=info.arch,
            members=list(info.members) or None,
            quality=QualityPublic(sdr=info.quality.sdr, basis=info.quality.basis, source=info.quality.source)
            if info.quality
            else None,
            installed=service.loader.is_available(info.name),
            speed=SpeedPublic(realtime_factor=speed.realtime_factor, jobs=speed.jobs)
            if (speed := speeds.get(info.name))
            else None,
            quality_note=info.quality.text() if info.quality else None,
        )
        for info in load_catalog().values()
    ]
    return CatalogList(models=models, default=default)


@router.post(
    "/api/v1/models/{name}/load",
    response_model=ModelLoaded,
    tags=["models"],
    dependencies=[Authenticated],
    summary="Load a model (or load it again on another device/precision)",
    description="Takes a run slot like a job: waits while every slot is busy, 503 + Retry-After "
    "when the queue is full too.",
)
async def load_model(
    name: Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="See GET /api/v1/models.")],
    service: ServiceDep,
    settings: SettingsDep,
    body: Annotated[ModelLoadForm | None, Body()] = None,
) -> ModelLoaded:
    device = (body.device if body else None) or settings.device
    precision = (body.precision if body else None) or settings.precision
    loaded = await model_loads.load_model(service, name, device, precision)
    return ModelLoaded(
        name=loaded.name,
        device=loaded.device,
        precision=loaded.precision,
        load_s=loaded.load_s,
        models_loaded=loaded.models_loaded,
    )
