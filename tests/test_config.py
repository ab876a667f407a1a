"""Settings: environment over the TOML file over defaults; unsafe combinations refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from musicsep.config import get_settings

EXAMPLE = Path(__file__).parents[1] / "configs" / "musicsep.example.toml"


def test_example_file_loads_and_environment_wins(monkeypatch):
    monkeypatch.setenv("MUSICSEP_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("MUSICSEP_QUEUE_SIZE", "3")
    settings = get_settings()
    assert settings.queue_size == 3
    assert settings.fallback_chain == ("htdemucs", "dsp")
    assert settings.max_upload_mb == 200


def test_fallback_none_is_an_empty_chain(monkeypatch):
    monkeypatch.setenv("MUSICSEP_FALLBACK", "none")
    assert get_settings().fallback_chain == ()


def test_wildcard_cors_with_credentials_is_refused(monkeypatch):
    monkeypatch.setenv("MUSICSEP_CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("MUSICSEP_CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ValidationError, match="credentials"):
        get_settings()


def test_model_repo_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICSEP_MODEL_REPO", str(tmp_path / "nope"))
    with pytest.raises(ValidationError, match="not a folder"):
        get_settings()
