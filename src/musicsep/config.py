"""One Settings object for every entry point (CLI, server, worker).

Values come from, highest first: explicit arguments, `MUSICSEP_*` environment variables, the TOML
file named by `MUSICSEP_CONFIG` (examples under `configs/`), then the defaults below. Validators
refuse combinations that would be unsafe to serve.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICSEP_", extra="ignore")

    # --- model layer -------------------------------------------------------------------------
    model_repo: Path | None = Field(
        default=None,
        description="Local weights folder: Demucs .th+.yaml or .safetensors+.yaml files.",
    )
    default_model: str = "htdemucs"
    device: Device = "auto"
    precision: Precision = "fp32"
    batch_size: int = Field(default=1, ge=1, le=64)
    max_duration_s: float = Field(default=3600.0, gt=0, description="Longest decoded track accepted.")
    offline: bool = Field(default=False, description="Never try to download weights.")

    # --- server ------------------------------------------------------------------------------
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_json: bool = False
    max_upload_mb: float = Field(default=200.0, gt=0)
    max_concurrent: int = Field(default=1, ge=1, le=64)
    queue_size: int = Field(default=16, ge=0, le=10_000)
    result_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    api_keys: list[SecretStr] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("MUSICSEP_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @field_validator("model_repo")
    @classmethod
    def _repo_must_be_a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"MUSICSEP_MODEL_REPO={value} is not a folder")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_cors(self) -> "Settings":
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError("CORS origin '*' together with credentials is refused: list the origins")
        return self


def get_settings(**overrides: object) -> Settings:
    """Build Settings now (never at import time), so tests and the CLI can set the environment first."""
    return Settings(**overrides)  # type: ignore[arg-type]
