"""Checks of a job's spec against the models this server can run, made before the job exists."""

from __future__ import annotations

from typing import Any

from musicsep.model.catalog import canonical_name, load_catalog
from musicsep.model.errors import InvalidOptions
from musicsep.model.names import UnknownModel, model_name
from musicsep.service.jobs import JobSpec


def check_model(spec: JobSpec, loader: Any) -> None:
    """Refuse names that are not names, unknown models and unknown stems before a job exists.

    Answered from the catalog and a listing of the model folder: no weights are read (a check
    that loaded them would let every request cost a full load)."""
    for member in spec.ensemble or ():
        if not loader.knows(model_name(member)):
            raise UnknownModel(
                f"unknown model '{member}' in the ensemble; GET /api/v1/models lists the models of this server"
            )
    name = model_name(spec.model)
    if not loader.knows(name):
        raise UnknownModel(f"unknown model '{name}'; GET /api/v1/models lists the models of this server")
    # A file name (`UVR-MDX-NET-Inst_HQ_4.onnx`) or alias names the same catalog entry.
    info = load_catalog().get(canonical_name(name))
    wanted = [*(spec.stems or ()), *([spec.two_stems] if spec.two_stems else [])]
    if info is not None and (unknown := [s for s in wanted if s not in info.stems]):
        raise InvalidOptions(f"model '{name}' has no stem {', '.join(unknown)}; its stems are {', '.join(info.stems)}")
    if spec.stems and spec.two_stems:
        raise InvalidOptions("ask for either stems or two_stems, not both")
