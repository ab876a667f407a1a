"""From a request to an admitted job: shared by POST /jobs and POST /separate.

Two bodies are accepted: multipart (`file` + option fields) and JSON (`audio_url` + the same
options). An upload is checked here, before the job exists; a URL only for its shape, because
the job's runner downloads it (service/inputs.py). A request whose idempotency key already has a
job skips the admission and model checks: the service answers it with that job (or a 409).
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from musicsep.api.errors import ApiError
from musicsep.api.request_id import current_request_id
from musicsep.api.schemas import SeparationForm, SeparationUrl
from musicsep.api.uploads import store_upload
from musicsep.config import Settings
from musicsep.service.idempotency import has_first_job
from musicsep.service.job_service import Created, JobService
from musicsep.service.jobs import JobSpec
from musicsep.service.song_names import source_name_of_upload, source_name_of_url
from musicsep.service.validation import check_model


async def _url_body(request: Request) -> SeparationUrl:
    try:
        return SeparationUrl.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def _check(spec: JobSpec, service: JobService, wait: bool) -> None:
    # Refuse cheaply before storing anything; `create` checks admission again after the awaits.
    if has_first_job(service.store, spec):
        return  # a replay: its job holds its place already, even in a full queue
    service.admission.check(wait=wait)
    await anyio.to_thread.run_sync(check_model, spec, service.loader)


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
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise ApiError(
                422,
                "invalid_request",
                "send the audio as the multipart form field `file`, or a JSON body with `audio_url`",
            )
        body = await _url_body(request)
        spec = body.to_spec(settings.default_model)
        await _check(spec, service, wait)
        name = source_name_of_url(body.audio_url)
        return service.create(spec, None, filename=name, request_id=current_request_id(), wait=wait)
    spec = params.to_spec(settings.default_model)
    await _check(spec, service, wait)
    upload = await store_upload(file, request.app.state.uploads.path, settings.max_duration_s)
    spec = spec.model_copy(update={"input_sha256": upload.sha256})
    name = source_name_of_upload(file.filename)
    return service.create(spec, upload.path, filename=name, request_id=current_request_id(), wait=wait)
