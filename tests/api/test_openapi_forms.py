"""/docs's "Try it out" works as given: the upload forms' pre-filled values are accepted as they
are, twice over (no idempotency key bound to a sample value), and every error status documents
its own example body.

Swagger UI fills a form field with the first of its `examples`, else its `default`, else a
made-up value of its type ("string", 0); the test fills the form the same way from the served
OpenAPI document and sends what Swagger UI would send (empty fields left out).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

FORM_ROUTES = ("/api/v1/jobs", "/api/v1/separate")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The form's properties with `$ref` and `allOf` merged, as Swagger UI shows them."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    properties: dict[str, Any] = {}
    for part in schema.get("allOf", []):
        properties.update(_resolve(document, part))
    properties.update(schema.get("properties", {}))
    return properties


def _prefilled(field: dict[str, Any]) -> Any:
    if field.get("examples"):
        return field["examples"][0]
    if "default" in field:
        return field["default"]
    kind = (field.get("anyOf") or [field])[0].get("type")
    return {"string": "string", "integer": 0, "number": 0, "boolean": True, "array": ["string"]}[kind]


def _form(document: dict[str, Any], route: str) -> dict[str, Any]:
    body = document["paths"][route]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    values = {name: _prefilled(field) for name, field in _resolve(document, body).items() if name != "file"}
    return {name: value for name, value in values.items() if value not in ("", [], None)}


@pytest.fixture
def document(live_server):
    server = live_server()
    answer = httpx.get(f"{server.url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    return server, answer.json()


def test_the_upload_forms_prefill_no_conflicting_or_made_up_values(document):
    _, spec = document
    for route in FORM_ROUTES:
        form = _form(spec, route)
        assert not {"stems", "two_stems", "ensemble", "idempotency_key", "webhook_url", "segment"} & set(form), form
        assert "string" not in {str(value) for value in form.values()}, form
        assert form["format"] == "wav16" and form["priority"] == 3


def test_the_prefilled_upload_form_is_accepted_twice_as_two_jobs(document, make_clip):
    server, spec = document
    form = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in _form(spec, FORM_ROUTES[0]).items()
    }
    form["analyze"] = "false"
    jobs = []
    for _ in range(2):
        with make_clip(seconds=1.0).open("rb") as handle:
            answer = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}, data=form, timeout=30)
        assert answer.status_code == 202, answer.text
        assert "idempotent-replayed" not in answer.headers
        jobs.append(answer.json()["job_id"])
    assert jobs[0] != jobs[1]
    for job_id in jobs:  # not needed any more: cancelled rather than run to the end
        assert httpx.delete(f"{server.url}/api/v1/jobs/{job_id}", timeout=30).status_code in (202, 204)


def test_every_error_status_documents_its_own_envelope_example(document):
    _, spec = document
    operation = spec["paths"]["/api/v1/jobs/{job_id}"]["patch"]
    codes = {}
    for status, response in operation["responses"].items():
        if not status.startswith(("4", "5")):
            continue
        example = response["content"]["application/json"]["example"]
        assert set(example["error"]) >= {"code", "message", "request_id"}, status
        codes[status] = example["error"]["code"]
    assert {"401", "404", "422"} <= set(codes)
    assert len(set(codes.values())) == len(codes), codes
    assert codes["404"] == "job_not_found"
