"""Checks of a job's spec against the models this server can run, made before the job exists."""

from __future__ import annotations

from typing import Any

from musicsep.model.catalog import load_catalog
from musicsep.model.errors import InvalidOptions, ModelUnavailable
from musicsep.service.jobs import JobSpec


def check_model(spec: JobSpec, loader: Any) -> None:
    """Refuse unknown models and stems before a job exists. Blocking (may look at weights)."""
    catalog = load_catalog()
    known = spec.model in catalog or spec.model in loader.loaded() or loader.is_available(spec.model)
    if not known:
        raise ModelUnavailable(f"unknown model '{spec.model}'; GET /api/v1/models lists the models of this server")
    info = catalog.get(spec.model)
    wanted = [*(spec.stems or ()), *([spec.two_stems] if spec.two_stems else [])]
    if info is not None and (unknown := [s for s in wanted if s not in info.stems]):
        raise InvalidOptions(f"model '{spec.model}' has no stem {', '.join(unknown)}; "
                             f"its stems are {', '.join(info.stems)}")
    if spec.stems and spec.two_stems:
        raise InvalidOptions("ask for either stems or two_stems, not both")
