"""After a fallback the page says which model ran, which was asked for and why, in the library
and on the player, for a job run by a real server that has no weights for the model asked for."""

from __future__ import annotations

import httpx
import pytest

from server_harness import stream_events

pytestmark = pytest.mark.browser


def test_the_library_and_the_player_name_the_model_that_ran_and_why(page, live_server, make_clip):
    from playwright.sync_api import expect

    server = live_server(fallback="htdemucs,dsp")
    with make_clip(seconds=2.0).open("rb") as handle:
        accepted = httpx.post(
            f"{server.url}/api/v1/jobs",
            files={"file": ("Fallback Song.wav", handle)},
            data={"model": "htdemucs_ft", "analyze": "false"},
            timeout=60,
        ).json()
    _, events = stream_events(server.url + accepted["events_url"])
    assert events[-1][1] == "completed"
    reason = httpx.get(server.url + accepted["status_url"], timeout=10).json()["fallback"]["reason"]

    page.goto(server.url)
    row = page.locator(f'#library-list li[data-job-id="{accepted["job_id"]}"]')
    expect(row.locator(".hint")).to_contain_text("dsp (instead of htdemucs_ft)")
    row.locator("button.title").click()
    expect(page.locator("#result-model")).to_have_text(f"Separated with dsp. htdemucs_ft was asked for: {reason}")
    expect(page.locator("#result-title")).to_have_text("Fallback Song")
    assert page.console_errors == []
