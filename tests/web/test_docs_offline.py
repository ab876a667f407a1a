"""/docs and /redoc in a browser that can reach nothing but the server on 127.0.0.1.

Every request to another host is aborted and recorded, as a machine without internet would
refuse it: the pages must still render, and Swagger's "Try it out" must still submit jobs. The
jobs are held by the stepped fake pipeline (tests/service/fake_pipeline.py): what is checked is
their acceptance, and the two cores stay free for the browser.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath

pytestmark = pytest.mark.browser

LOOPBACK = frozenset({"127.0.0.1", "localhost"})
JOBS_OPERATION = "#operations-jobs-create_job_api_v1_jobs_post"
#: ReDoc's "API docs by Redocly" image: the one file it asks another host for, and drops when refused.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(page):
    """`page` with every request to a host other than loopback aborted; `page.refused` lists them."""
    page.refused = []

    def only_loopback(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            page.refused.append(url)
            route.abort("internetdisconnected")

    page.context.route("**/*", only_loopback)
    return page


def _execute(operation, clip) -> tuple[int, dict]:
    """Choose `clip` in the operation's file field, press Execute, and return the status and body
    of the server's answer once Swagger shows them."""
    from playwright.sync_api import expect

    operation.locator("input[type=file]").set_input_files(str(clip))
    with operation.page.expect_response(_is_job_submission) as answered:
        operation.locator("button.execute").click()
    answer = answered.value
    shown = operation.locator(".live-responses-table tbody tr.response").first
    # Each answer has its own request id (a response header Swagger lists): this answer is shown,
    # not the one before it.
    expect(shown).to_contain_text(answer.headers["x-request-id"])
    expect(shown.locator(".response-col_status")).to_have_text(str(answer.status))
    return answer.status, json.loads(shown.locator(".response-col_description pre").first.text_content())


def _is_job_submission(response) -> bool:
    return response.request.method == "POST" and urlsplit(response.url).path == "/api/v1/jobs"


def test_docs_and_redoc_render_and_try_it_out_submits_jobs_without_internet(
    offline_page, live_server, make_clip, artifacts
):
    from playwright.sync_api import expect

    page = offline_page
    fake = SteppedPipeline(timeout_s=60)
    server = live_server(pipeline=fake)

    page.goto(f"{server.url}/docs")
    expect(page.locator(f"{JOBS_OPERATION} .opblock-summary")).to_be_visible()
    expect(page.locator(".opblock")).not_to_have_count(0)
    page.screenshot(path=str(artifacts / "docs-offline.png"), full_page=True)

    operation = page.locator(JOBS_OPERATION)
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    try:
        first_status, first = _execute(operation, make_clip(seconds=1.0, seed=1))
        assert first_status == 202, first
        second_status, second = _execute(operation, make_clip(seconds=1.0, seed=2))
        assert second_status == 202, second
    finally:
        fake.release()
    assert second["job_id"] != first["job_id"]
    assert page.refused == []

    page.goto(f"{server.url}/redoc")
    expect(page.locator(".api-content h1")).to_contain_text("musicsep")
    expect(
        page.get_by_role("heading", name="Upload a song (or give its audio_url) and queue its separation")
    ).to_be_visible()

    expect(page.locator("img[alt='redocly logo']")).to_have_count(0)
    assert set(page.refused) <= {REDOC_LOGO}
    assert page.console_errors == []
