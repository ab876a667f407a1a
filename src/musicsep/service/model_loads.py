"""Loading a model on request (`POST /api/v1/models/{name}/load`), admitted like a job.

A load is the memory peak of a model's life: run beside a job on the same device, it can double
what the device holds. So it takes a slot of the same admission as jobs: it waits in the queue
while every slot is busy, is refused with QueueFull (503 + Retry-After) when the queue is full,
and gives its slot back once the weights are in (`JobQueue.hold_slot`). In scale-out the API
process runs no jobs, so there is no slot to take there: the load only checks that the queue is
reachable, and the loader's own lock keeps loads one at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread

from musicsep.model.devices import resolve_device
from musicsep.model.names import UnknownModel, model_name

if TYPE_CHECKING:
    from musicsep.service.job_service import JobService


@dataclass(frozen=True)
class LoadedModel:
    name: str
    device: str
    precision: str
    load_s: float
    models_loaded: list[str]


async def load_model(service: JobService, name: str, device: str, precision: str) -> LoadedModel:
    """Load `name` on `device` once a slot is free. Refuses, before taking a slot, a name that is
    not one or that this server does not know, and a device this machine does not have."""
    loader = service.loader
    name = model_name(name)
    if not loader.knows(name):
        raise UnknownModel(f"unknown model '{name}'; GET /api/v1/models lists the models of this server")
    await anyio.to_thread.run_sync(resolve_device, device)  # imports torch: not on the loop thread
    async with service.admission.hold_slot():
        started = time.monotonic()
        separator = await anyio.to_thread.run_sync(loader.get, name, device, precision)
        load_s = time.monotonic() - started
    return LoadedModel(
        name=name,
        device=str(getattr(separator, "device", "cpu")),  # the DSP engine runs on the CPU only
        precision=str(getattr(separator, "precision", "fp32")),
        load_s=round(load_s, 4),
        models_loaded=loader.loaded(),
    )
