"""What the OpenAPI document shows and pre-fills: empty optional form fields, one example per error.

Swagger UI's "Try it out" fills every multipart field with a sample drawn from its schema: the
first of `examples`, else the `default`, else a made-up value of the field's type (`string`,
`0`). Sent as they are, those samples conflict (`stems` and `two_stems` together, `segment=0`)
or bind a job to the idempotency key `string`, so that every later upload answers the first job.
An optional field of the form (one whose default is "absent") therefore carries one empty
example, which Swagger UI leaves out of the request; the field's description still says what it
takes. Fields with a real default keep it: that is what the server would use anyway.
"""

from __future__ import annotations

from typing import Any

#: One example body per error status, so that a reader of /docs sees the envelope each one sends.
ERROR_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: (
        "Malformed request: a body or header that cannot be parsed",
        "invalid_last_event_id",
        "Last-Event-ID must be an event id this server sent (1 to 18 ASCII digits)",
    ),
    401: (
        "Missing or wrong credentials",
        "unauthorized",
        "this server needs an API key (Authorization: Bearer or X-API-Key) or Basic credentials",
    ),
    404: ("Unknown job, stem or model", "job_not_found", "no job has this id"),
    409: (
        "Conflict: an idempotency_key reused with another body (`job_id` names its job), "
        "or a POST /separate whose job was cancelled",
        "idempotency_conflict",
        "this idempotency_key was used for job 3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f with a different body "
        "(options or input); send a new key for a new job",
    ),
    410: (
        "The job's results expired",
        "job_expired",
        "this job's results passed their retention time and were removed",
    ),
    413: ("Upload too large", "content_too_large", "the upload is larger than this server accepts (about 200.0 MB)"),
    415: ("Not an audio format the server decodes", "unsupported_format", "the file is not audio this server decodes"),
    422: (
        "Invalid options or audio",
        "invalid_request",
        "title: Value error, title must not contain control characters",
    ),
    429: (
        "Too many concurrent streams or requests from this caller (see Retry-After)",
        "too_many_streams",
        "too many open event streams for this job; close one or retry later",
    ),
    503: (
        "Busy: queue full or no free slot (see Retry-After)",
        "queue_full",
        "the server is busy: every slot is taken and the queue is full",
    ),
}


def error_response(envelope_model: type, description: str, code: str, message: str) -> dict[str, Any]:
    """One error answer of the envelope's shape with its own example (a route's `responses=` entry)."""
    error: dict[str, Any] = {"code": code, "message": message, "request_id": "b1946ac92492d234"}
    if code == "idempotency_conflict":
        error["job_id"] = "3f2b8c0e6d5a4f1b9c7e2a1d0b3c4e5f"
    return {
        "model": envelope_model,
        "description": description,
        "content": {"application/json": {"example": {"error": error}}},
    }


def error_responses(envelope_model: type) -> dict[int | str, dict[str, Any]]:
    """`responses=` for routes: every error answer has the envelope's shape and its own example."""
    return {
        status: error_response(envelope_model, description, code, message)
        for status, (description, code, message) in ERROR_EXAMPLES.items()
    }


def empty_optional_fields(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of the form: each optional field without a default gets one empty
    example (`""`, or `[]` for a list) in place of its illustrative ones."""
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        if name in required or field.get("default") is not None:
            continue
        types = {part.get("type") for part in field.get("anyOf", [field])}
        field["examples"] = [[]] if "array" in types else [""]
