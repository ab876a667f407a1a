"""`Annotated` dependency aliases: routes receive what the lifespan built, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from musicsep.api.auth import require_auth
from musicsep.config import Settings
from musicsep.service.job_service import JobService


def _service(request: Request) -> JobService:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[JobService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
#: Put in a router's `dependencies=` to require credentials when auth is on.
Authenticated = Depends(require_auth)
