"""One Settings object for every entry point (CLI, server, worker).

Values come from, highest first: explicit arguments, `MUSICSEP_*` environment variables, the TOML
file named by `MUSICSEP_CONFIG` (examples under `configs/`), then the defaults below. Validators
refuse combinations that would be unsafe to serve.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
Runtime = Literal["auto", "torch", "openvino", "onnxruntime"]


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
    runtime: Runtime = Field(
        default="auto",
        description="Inference runtime on CPUs: auto (chosen per model and CPU by a cached measurement), torch, "
        "openvino or onnxruntime (docs/performance.md).",
    )
    runtime_cache_dir: Path | None = Field(
        default=None,
        description="Where the CPU runtime choices and OpenVINO's compiled/converted models are cached "
        "(default ~/.cache/musicsep/runtime).",
    )
    batch_size: int = Field(default=1, ge=1, le=64)
    max_duration_s: float = Field(default=3600.0, gt=0, description="Longest decoded track accepted.")
    offline: bool = Field(default=False, description="Never try to download weights.")
    fallback: str = Field(
        default="htdemucs,dsp",
        description="Models tried in order when the requested one's weights are unavailable; 'none' to fail instead.",
    )
    model_cache_mb: float = Field(
        default=4096.0,
        gt=0,
        description="Weights kept loaded (parameters and buffers), least recently used out first; models a "
        "running job holds are never dropped. 4096: two of the largest catalog bags in fp32.",
    )

    # --- server ------------------------------------------------------------------------------
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_json: bool = False
    max_upload_mb: float = Field(default=200.0, gt=0)
    max_concurrent: int = Field(default=1, ge=1, le=64)
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Nice value of the threads that separate (Linux), so the event loop answers first; 0 to keep.",
    )
    queue_size: int = Field(default=16, ge=0, le=10_000)
    result_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    api_keys: list[SecretStr] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    basic_auth: list[SecretStr] = Field(
        default_factory=list, description="HTTP Basic credentials accepted, each 'user:password'."
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for download URLs and stream tokens; generated once under data_dir if unset.",
    )
    stream_token_ttl_s: float = Field(default=1800.0, gt=0, description="Lifetime of a per-job events token.")
    sse_ping_s: float = Field(default=15.0, gt=0, description="Keep-alive comment interval on event streams.")
    sse_retry_ms: int = Field(default=2000, ge=0, description="`retry:` sent to EventSource clients.")
    sse_max_lifetime_s: float = Field(
        default=1800.0,
        gt=0,
        description="An event stream is closed (with `retry:`) after this long; the client resumes with "
        "Last-Event-ID, losing nothing. Bounds what one connection holds.",
    )
    sse_max_streams_per_job: int = Field(
        default=50, ge=1, description="Open GET …/events streams per job in one API process; more get 429."
    )
    sse_max_streams_per_caller: int = Field(
        default=100,
        ge=1,
        description="Open GET …/events streams per API key (or per client address without one) in one API "
        "process; more get 429.",
    )
    max_inline_mb: float = Field(default=20.0, ge=0, description="Cap on stems inlined with payload=base64.")
    max_attempts: int = Field(default=2, ge=1, le=10, description="Runs of a job whose server died mid-way.")
    cleanup_interval_s: float = Field(default=300.0, gt=0, description="How often expired results are removed.")
    live: bool = Field(
        default=True,
        description="Spool each stem's finished samples while a job runs, for GET …/live (docs/server.md); "
        "off saves the disk they take (a stem's float32 samples, as much again as a float32 stem file).",
    )
    live_grace_s: float = Field(
        default=600.0, ge=0, description="How long a finished job's live segments stay readable before removal."
    )
    public_url: str | None = Field(
        default=None, description="Base URL put in links (behind a proxy); else taken from the request."
    )
    preload: list[str] = Field(default_factory=list, description="Models loaded at startup.")
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="The request line and headers must arrive within this long of the connection opening "
        "(or of the next request's first byte on a kept-alive one), however slowly they trickle; else 408 "
        "and close. Between requests uvicorn's timeout_keep_alive applies (uvicorn_config.json).",
    )
    http_body_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request body (an upload) is abandoned when no byte of it arrives for this long; "
        "time the server itself is not reading does not count.",
    )
    http_max_header_kb: int = Field(
        default=64, ge=1, le=1024, description="Request line + headers larger than this answer 431 and close."
    )

    # --- scale-out (docs/deploy.md) -----------------------------------------------------------
    queue: Literal["local", "celery"] = Field(
        default="local", description="local: in-process queue, SQLite, one process. celery: Redis + workers."
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Broker, job store and event log.")
    redis_prefix: str = Field(default="musicsep:", description="Prefix of every musicsep key in Redis.")
    visibility_timeout_s: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="A job whose worker died is redelivered after this long; keep it above the longest job.",
    )
    storage: Literal["local", "s3"] = Field(
        default="local", description="s3: job files in a bucket, stems served by presigned URLs (needs queue=celery)."
    )
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = Field(default=None, description="R2 / MinIO endpoint; unset for AWS S3.")
    s3_prefix: str = Field(default="", description="Key prefix of every object musicsep writes.")
    s3_url_ttl_s: int = Field(
        default=24 * 3600, ge=1, le=7 * 24 * 3600, description="Lifetime of presigned stem URLs (at most 7 days)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret ('whsec_' + base64); webhooks are sent only when set."
    )
    url_timeout_s: float = Field(
        default=120.0, gt=0, description="Whole download of an audio_url, redirects included (size cap: max_upload_mb)."
    )
    allow_loopback_urls: bool = Field(
        default=False,
        description="TESTS ONLY: let audio_url inputs and webhook targets on 127.0.0.1 / ::1 through the SSRF "
        "check (private, link-local and metadata addresses stay refused). Never set it in production: any "
        "caller could then make the server fetch from services listening on its own loopback.",
    )

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

    @property
    def fallback_chain(self) -> tuple[str, ...]:
        if self.fallback.strip().lower() in ("", "none"):
            return ()
        return tuple(name.strip() for name in self.fallback.split(",") if name.strip())

    @field_validator("model_repo")
    @classmethod
    def _repo_must_be_a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"MUSICSEP_MODEL_REPO={value} is not a folder")
        return value

    @model_validator(mode="after")
    def _models_are_names(self) -> Settings:
        from musicsep.model.names import RULE, is_model_name

        for setting, names in (
            ("DEFAULT_MODEL", [self.default_model]),
            ("PRELOAD", self.preload),
            ("FALLBACK", list(self.fallback_chain)),
        ):
            if not all(is_model_name(name) for name in names):
                raise ValueError(f"MUSICSEP_{setting}: {RULE}")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_cors(self) -> Settings:
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError("CORS origin '*' together with credentials is refused: list the origins")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket_and_workers(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("MUSICSEP_STORAGE=s3 needs MUSICSEP_S3_BUCKET")
        if self.storage == "s3" and self.queue != "celery":
            raise ValueError("MUSICSEP_STORAGE=s3 works with MUSICSEP_QUEUE=celery only (docs/deploy.md)")
        return self

    @field_validator("basic_auth")
    @classmethod
    def _basic_needs_user_and_password(cls, value: list[SecretStr]) -> list[SecretStr]:
        for entry in value:
            user, sep, password = entry.get_secret_value().partition(":")
            if not sep or not user or not password:
                raise ValueError("MUSICSEP_BASIC_AUTH entries must look like 'user:password'")
        return value

    @field_validator("api_keys")
    @classmethod
    def _refuse_short_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value()) < 16 for key in value):
            raise ValueError("API keys shorter than 16 characters are refused: they can be guessed")
        return value

    @field_validator("signing_key")
    @classmethod
    def _refuse_short_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError(
                "MUSICSEP_SIGNING_KEY must be at least 32 bytes (anyone could forge links signed with a short "
                "one); generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.basic_auth)

    def exposed_without_auth(self) -> bool:
        """True when the server listens beyond loopback with no credentials; `serve` warns about it."""
        return not self.auth_enabled and self.host not in ("127.0.0.1", "localhost", "::1")


def get_settings(**overrides: object) -> Settings:
    """Build Settings now (never at import time), so tests and the CLI can set the environment first."""
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_invalid(exc: ValidationError) -> str:
    """A settings error in words for the CLI: one line per field, never the value given (pydantic's
    own text repeats it, and the value may be a secret)."""
    return "\n".join(
        f"  {'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )
