"""What both clients share besides the SSE parser: option names and URL handling."""

from __future__ import annotations

from email.message import Message
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin

OPTION_NAMES = ("model", "stems", "two_stems", "format", "shifts", "overlap", "segment", "payload", "analyze",
                "priority", "webhook_url", "idempotency_key")


def form_fields(options: dict[str, Any]) -> dict[str, str]:
    """Separation options → multipart form fields (lists joined by commas, booleans lower-case)."""
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    fields = {}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        fields[name] = str(value)
    return fields


def absolute(base_url: str, url: str) -> str:
    """Links in events are relative to the server unless it runs with a public URL."""
    return urljoin(base_url.rstrip("/") + "/", url)


def events_path(job_or_url: str) -> str:
    """A job id or an `events_url` (which may carry a stream token) → the URL to open."""
    return job_or_url if "/" in job_or_url else f"/api/v1/jobs/{job_or_url}/events"


def filename_from(disposition: str, url: str) -> str:
    """The file name a download should get: Content-Disposition's, else the URL's last part."""
    message = Message()
    message["content-disposition"] = disposition
    name = message.get_filename() or url.split("?")[0].rsplit("/", 1)[-1]
    return PurePosixPath(name).name
