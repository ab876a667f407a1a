"""The model catalog (`configs/models.yaml`): which names exist, their stems, and a line for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class ModelInfo:
    name: str
    stems: tuple[str, ...]
    bag: int
    description: str
    requires: tuple[str, ...] = field(default_factory=tuple)


def _catalog_text() -> str:
    # In a source checkout the catalog is the repository's configs/models.yaml; an installed wheel
    # carries a copy as package data (see pyproject's force-include).
    checkout = Path(__file__).resolve().parents[3] / "configs" / "models.yaml"
    if checkout.is_file():
        return checkout.read_text()
    return resources.files("musicsep").joinpath("_configs/models.yaml").read_text()


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelInfo]:
    raw = yaml.safe_load(_catalog_text())["models"]
    return {
        name: ModelInfo(
            name=name,
            stems=tuple(entry["stems"]),
            bag=int(entry.get("bag", 1)),
            description=entry["description"],
            requires=tuple(entry.get("requires", ())),
        )
        for name, entry in raw.items()
    }
