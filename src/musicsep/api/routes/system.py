"""Health, Prometheus metrics and the model catalog (with load/reload on a device)."""

from __future__ import annotations

import time
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Body, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from musicsep.api.deps import Authenticated, ServiceDep, SettingsDep
from musicsep.api.schemas import ERROR_RESPONSES, HealthPublic, ModelList, ModelLoaded, ModelLoadForm, ModelPublic
from musicsep.model.catalog import load_catalog

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/health", response_model=HealthPublic, tags=["system"], summary="Liveness, load and dependencies",
            responses={503: {"model": HealthPublic, "description": "A dependency of this node is down"}})
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


@router.get("/metrics", tags=["system"], dependencies=[Authenticated], summary="Prometheus metrics",
            response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/models", response_model=ModelList, tags=["models"], dependencies=[Authenticated],
            summary="The models this server knows")
async def list_models(service: ServiceDep, settings: SettingsDep) -> ModelList:
    loaded = set(service.loader.loaded())
    models = [ModelPublic(name=info.name, stems=list(info.stems), description=info.description,
                          loaded=info.name in loaded) for info in load_catalog().values()]
    return ModelList(models=models, default=settings.default_model)


@router.post("/api/v1/models/{name}/load", response_model=ModelLoaded, tags=["models"],
             dependencies=[Authenticated], summary="Load a model (or load it again on another device/precision)")
async def load_model(name: str, service: ServiceDep, settings: SettingsDep,
                     body: Annotated[ModelLoadForm | None, Body()] = None) -> ModelLoaded:
    device = (body.device if body else None) or settings.device
    precision = (body.precision if body else None) or settings.precision
    started = time.monotonic()
    separator = await anyio.to_thread.run_sync(service.loader.get, name, device, precision)
    return ModelLoaded(
        name=name,
        device=str(separator.device),
        precision=str(separator.precision),
        load_s=round(time.monotonic() - started, 4),
        models_loaded=service.loader.loaded(),
    )
