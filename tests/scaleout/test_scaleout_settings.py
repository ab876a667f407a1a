"""The scale-out switches refuse combinations that would half-work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musicsep.config import Settings


def test_the_default_is_the_embedded_mode():
    settings = Settings()
    assert (settings.queue, settings.storage) == ("local", "local")


def test_s3_storage_needs_a_bucket():
    with pytest.raises(ValidationError, match="MUSICSEP_S3_BUCKET"):
        Settings(queue="celery", storage="s3")


def test_s3_storage_is_refused_in_the_embedded_mode():
    with pytest.raises(ValidationError, match="MUSICSEP_QUEUE=celery"):
        Settings(storage="s3", s3_bucket="stems")


def test_presigned_urls_cannot_outlive_seven_days():
    with pytest.raises(ValidationError):
        Settings(queue="celery", storage="s3", s3_bucket="stems", s3_url_ttl_s=8 * 24 * 3600)
