"""schemathesis against the server's own OpenAPI document: no generated request gets a 500.

Not collected by itself (no `test_` prefix): `test_openapi_schemathesis.py` runs this file in a
network namespace with only loopback, because generated requests carry `audio_url` values such
as `https://example.com/song.mp3` that the server would otherwise really try to fetch.

A real uvicorn on 127.0.0.1 with an API key and the tiny model; every operation in /openapi.json
gets generated requests, valid and invalid, and every response is checked: never a 5xx, the
status code, content type, headers and body conform to the document, invalid data is refused,
auth is not ignored. The examples per operation are bounded so the whole file stays near 30 s.

Checks left out, each with its reason:
- `positive_data_acceptance`: a request valid by the schema can still be refused by design: an
  upload whose bytes are not audio (415), a model name the catalog lacks (404), an unknown job id
  (404). The schema cannot say "bytes that decode as audio".
- `use_after_free` and `ensure_resource_availability` (stateful checks over links between
  operations): jobs are asynchronous, so "created, then read at once" legitimately sees queued
  states; cancel-then-read answers the cancelled job (kept, not freed: a client must learn why).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from server_harness import base_settings, start_server

API_KEY = "schemathesis-key-0123456789"
EXCLUDED = [
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
]
EXAMPLES = 25


if os.environ.get("MUSICSEP_TEST_NETNS") != "loopback-only":
    pytest.skip("run through test_openapi_schemathesis.py (inside a loopback-only namespace)", allow_module_level=True)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, tiny_model_repo) -> Iterator[object]:
    data_dir = tmp_path_factory.mktemp("schemathesis") / "data"
    server = start_server(
        base_settings(
            data_dir, tiny_model_repo, api_keys=[API_KEY], queue_size=4, max_upload_mb=2.0, max_duration_s=20.0
        )
    )
    try:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    finally:
        server.stop()


def _run_operation(operation, mode: GenerationMode) -> None:
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        case.call_and_validate(headers={"X-API-Key": API_KEY}, timeout=30, excluded_checks=EXCLUDED)

    run()


def test_every_operation_conforms_and_never_errors(api_schema):
    """Positive and negative examples of every operation; failures are gathered, then reported
    together so one bad route does not hide another. (schemathesis's pytest plugin is not used:
    it reads `request.node._nodeid`, which pytest 9 removed.)"""
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(operation, mode)
            except Unsatisfiable:
                continue  # nothing invalid to send: an operation without parameters or body
            # schemathesis raises a FailureGroup (a BaseExceptionGroup) of its failures.
            except (FailureGroup, Exception) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert operations >= 10, "the OpenAPI document lost its operations"
    assert not failures, "\n\n".join(failures)
