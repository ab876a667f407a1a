"""From a multipart request to an admitted job: shared by POST /jobs and POST /separate."""

from __future__ import annotations

import anyio.to_thread
from fastapi import Request, UploadFile

from musicsep.api.errors import ApiError
from musicsep.api.request_id import current_request_id
from musicsep.api.schemas import SeparationForm
from musicsep.api.uploads import store_upload
from musicsep.config import Settings
from musicsep.service.job_service import Created, JobService
from musicsep.service.validation import check_model


async def submit(
    request: Request,
    params: SeparationForm,
    file: UploadFile | None,
    service: JobService,
    settings: Settings,
    *,
    wait: bool = True,
) -> Created:
    """Validate, store and admit; raises the typed errors the error table maps to statuses."""
    if file is None:
        if request.headers.get("content-type", "").startswith("application/json"):
            raise ApiError(422, "audio_url_disabled",
                           "audio_url is not enabled on this server; upload the audio as multipart field `file`")
        raise ApiError(422, "invalid_request", "send the audio as the multipart form field `file`")
    spec = params.to_spec(settings.default_model)
    # Refuse cheaply before storing the upload; `create` checks again after the awaits below.
    service.admission.check(wait=wait)
    await anyio.to_thread.run_sync(check_model, spec, service.loader)
    upload = await store_upload(file, settings.data_dir / "uploads", settings.max_duration_s)
    return service.create(spec, upload, filename=file.filename, request_id=current_request_id(), wait=wait)
