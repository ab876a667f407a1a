"""Public links to job resources: where the API serves a job's status, events, stems and zip.

In the service layer because every process that announces a stem builds them: the API node
(embedded mode, and the zip link in scale-out) and the Celery worker, which appends the `stem`
events of the jobs it finishes. The paths are the API's routes; the signature is `Signer`'s.
"""

from __future__ import annotations

from urllib.parse import urlencode


class Links:
    """Builds `/api/v1/jobs/<id>/stems/<name>?expires=…&sig=…` (`<name>` may be `<stem>/preview`
    or `<stem>/peaks`), `…/stems.zip?…` and `…/mix?…`, under `public_url` when set."""

    def __init__(self, public_url: str | None) -> None:
        self._prefix = (public_url or "").rstrip("/")

    def __call__(self, job_id: str, name: str, expires: int, sig: str) -> str:
        resource = name if name in ("stems.zip", "mix") else f"stems/{name}"
        query = urlencode({"expires": expires, "sig": sig})
        return f"{self._prefix}/api/v1/jobs/{job_id}/{resource}?{query}"

    def absolute(self, path: str) -> str:
        return f"{self._prefix}{path}"
