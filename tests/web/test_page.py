"""The web page in headless Chromium against a real server with a tiny Demucs model.

The tests that need a job to stay running (busy, queued, several uploads) run the server with
the stepped fake pipeline (tests/service/fake_pipeline.py), which holds each job until the test
releases it; the others separate with the real tiny model."""

from __future__ import annotations

import functools
import http.server
import io
import re
import threading

import httpx
import pytest
import soundfile as sf

from server_harness import stream_events
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath

pytestmark = pytest.mark.browser

SONG_S = 20.0


def _choose_and_submit(page, clip) -> None:
    page.set_input_files("#file", str(clip))
    page.click("#submit")


def test_upload_to_done_with_waveforms_analysis_and_downloads(page, live_server, make_clip, artifacts):
    from playwright.sync_api import expect

    server = live_server()
    clip = make_clip(seconds=SONG_S)
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    page.screenshot(path=str(artifacts / "idle.png"), full_page=True)

    _choose_and_submit(page, clip)
    page.wait_for_function("document.querySelector('#progress').value > 0")
    page.screenshot(path=str(artifacts / "running.png"), full_page=True)

    page.wait_for_function("document.querySelector('#progress').value === 100", timeout=120_000)
    expect(page.locator("#progress-text")).to_have_text("100%")
    expect(page.locator("#stems")).to_have_attribute("data-drawn", "true", timeout=60_000)
    rows = page.locator("#stems li.stem")
    expect(rows).to_have_count(4)
    stems = rows.evaluate_all("rows => rows.map(r => r.dataset.stem)")
    assert sorted(stems) == ["bass", "drums", "other", "vocals"]
    inked = page.evaluate("""() => [...document.querySelectorAll('canvas.waveform')].map(canvas => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked += 1;
        return inked / (canvas.width * canvas.height);
    })""")
    assert all(share > 0.01 for share in inked), inked
    scales = page.locator("canvas.waveform").evaluate_all("canvases => canvases.map(c => c.dataset.scale)")
    assert len(set(scales)) == 1  # one loudness scale for every stem
    expect(page.locator('#analysis dd[data-field="bpm"]')).to_have_text(re.compile(r"^\d+ BPM"))
    expect(page.locator('#analysis dd[data-field="key"]')).to_have_text(
        re.compile(r"^[A-G][b#]? (major|minor)( \(confidence \d+%\))?$")
    )
    page.screenshot(path=str(artifacts / "done.png"), full_page=True)

    for stem in stems:
        href = page.get_attribute(f'li[data-stem="{stem}"] a.download', "href")
        response = httpx.get(server.url + href, timeout=30)
        assert response.status_code == 200
        audio, rate = sf.read(io.BytesIO(response.content))
        assert abs(len(audio) / rate - SONG_S) < 0.05
    assert page.console_errors == []


def _submit_by_api(url: str, clip) -> dict:
    with clip.open("rb") as handle:
        response = httpx.post(f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, timeout=60)
    assert response.status_code == 202
    return response.json()


def _snapshot(page) -> dict:
    return page.evaluate("window.musicsep.player.snapshot()")


def test_mixer_plays_mutes_solos_and_seeks_all_stems_after_a_reload(page, live_server, make_clip):
    from playwright.sync_api import expect

    server = live_server()
    job = _submit_by_api(server.url, make_clip(seconds=8.0))
    _, events = stream_events(server.url + job["events_url"])
    assert events[-1][1] == "completed"

    page.goto(server.url)
    page.click(f'#library-list li[data-job-id="{job["job_id"]}"] button.title')
    expect(page.locator("#stems")).to_have_attribute("data-playable", "true")
    page.reload()  # the job stays in the address and reopens
    expect(page.locator("#stems")).to_have_attribute("data-playable", "true")

    page.click("#play")
    page.wait_for_function("window.musicsep.player.position() > 0.3")
    snapshot = _snapshot(page)
    assert snapshot["playing"] and all(stem["playing"] for stem in snapshot["stems"].values())

    page.click('button[aria-label="Mute drums"]')
    gains = {name: stem["gain"] for name, stem in _snapshot(page)["stems"].items()}
    assert gains == {"drums": 0, "bass": 1, "other": 1, "vocals": 1}
    page.click('button[aria-label="Mute drums"]')
    page.click('button[aria-label="Solo vocals"]')
    gains = {name: stem["gain"] for name, stem in _snapshot(page)["stems"].items()}
    assert gains == {"drums": 0, "bass": 0, "other": 0, "vocals": 1}
    page.fill('input[aria-label="Volume vocals"]', "0.5")
    assert _snapshot(page)["stems"]["vocals"]["gain"] == 0.5

    page.fill("#seek", "5")
    page.wait_for_function("window.musicsep.player.position() >= 5")
    snapshot = _snapshot(page)
    times = [stem["time"] for stem in snapshot["stems"].values()]
    assert max(times) - min(times) < 0.1 and min(times) >= 5  # every stem moved together
    assert snapshot["playing"]

    lane = page.locator('li[data-stem="bass"] .lane')
    box = lane.bounding_box()
    lane.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})  # a waveform seeks every stem
    assert abs(_snapshot(page)["position"] - 0.75 * _snapshot(page)["duration"]) < 0.3

    page.locator("#analysis").click()  # the keys go to the player when no control has the focus
    page.keyboard.press("ArrowLeft")
    assert _snapshot(page)["position"] < 2
    page.keyboard.press("Space")
    page.wait_for_function("!window.musicsep.player.playing")
    assert page.console_errors == []


def _drop_all_connections(server) -> int:
    """Close every client socket of the server, from its own event loop (as a dying proxy would)."""
    connections = list(server.server.server_state.connections)
    closed = threading.Event()

    def close_all() -> None:
        for connection in connections:
            connection.transport.abort()
        closed.set()

    connections[0].loop.call_soon_threadsafe(close_all)
    assert closed.wait(10)
    return len(connections)


def test_a_dropped_connection_resumes_without_repeats_or_steps_back(page, live_server, make_clip):
    from playwright.sync_api import expect

    server = live_server(sse_retry_ms=200)
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    page.evaluate("""() => {
        window.progressSeen = [];
        new MutationObserver(() => window.progressSeen.push(document.querySelector('#progress').value))
            .observe(document.querySelector('#progress'), {attributes: true, attributeFilter: ['value']});
    }""")
    _choose_and_submit(page, make_clip(seconds=SONG_S))
    page.wait_for_function("document.querySelector('#progress').value > 0")
    assert _drop_all_connections(server) >= 1
    page.wait_for_function("Number(document.querySelector('#connection').dataset.reconnects) >= 1")
    expect(page.locator("#job-status")).to_have_text("Done.", timeout=120_000)

    shown = page.locator("#event-log li").evaluate_all("items => items.map(i => Number(i.dataset.eventId))")
    job_id = page.evaluate("window.musicsep.state.jobId")
    _, logged = stream_events(f"{server.url}/api/v1/jobs/{job_id}/events")
    assert shown == [event_id for event_id, _, _ in logged]  # every event once, in order
    seen = page.evaluate("window.progressSeen")
    assert seen == sorted(seen) and seen[-1] == 100
    assert page.console_errors == []


def test_plain_word_errors_for_too_large_not_audio_unknown_model_and_busy(page, live_server, make_clip, tmp_path):
    from playwright.sync_api import expect

    fake = SteppedPipeline(timeout_s=120)
    server = live_server(pipeline=fake, max_upload_mb=0.5, queue_size=0)
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    error = page.locator("#form-error")

    _choose_and_submit(page, make_clip(seconds=10.0))  # 1.7 MB of WAV
    expect(error).to_contain_text("This file is too large for this server")

    text = tmp_path / "notes.txt"
    text.write_text("not a song, just words\n" * 20)
    _choose_and_submit(page, text)
    expect(error).to_have_text("This is not an audio file the server can read. Try WAV, FLAC, MP3, Ogg or M4A.")

    small = make_clip(seconds=1.0)
    page.evaluate("document.querySelector('#model').add(new Option('no_such_model', 'no_such_model', true, true))")
    _choose_and_submit(page, small)
    expect(error).to_have_text("This model is not available on this server. Choose another one.")
    page.select_option("#model", "tiny_htdemucs")

    # The one slot is taken by a job the stepped pipeline holds; the queue holds none.
    try:
        _submit_by_api(server.url, small)
        fake.block_until_started(1)
        _choose_and_submit(page, small)
        expect(error).to_have_text(re.compile(r"^The server is busy — try again in \d+ s\.$"))
    finally:
        fake.release()
    assert page.console_errors == []


def test_usable_at_360_px_with_every_control_labelled(browser, live_server):
    server = live_server()
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        page.goto(server.url)
        page.wait_for_selector("#model option", state="attached")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map(el => el.id || el.outerHTML)""")
        assert unlabelled == []
        page.keyboard.press("Tab")  # keyboard reaches the form's controls in order
        focused = []
        for _ in range(6):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("document.activeElement.id || document.activeElement.name"))
        assert {"file", "url", "model"} <= set(focused)
    finally:
        context.close()


def test_a_queued_job_shows_its_place_and_can_be_cancelled(page, live_server, make_clip):
    from playwright.sync_api import expect

    fake = SteppedPipeline(timeout_s=120)
    server = live_server(pipeline=fake, max_concurrent=1)
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    clip = make_clip(seconds=1.0)
    try:
        _submit_by_api(server.url, clip)
        fake.block_until_started(1)  # the running job holds the only slot until the test lets it go
        _choose_and_submit(page, clip)
        expect(page.locator("#job-status")).to_have_text("Waiting: number 1 in the queue.")
        page.click("#cancel")
        expect(page.locator("#job-status")).to_have_text("Cancelled.")
    finally:
        fake.release()
    types = page.locator("#event-log li").evaluate_all("items => items.map(i => i.dataset.type)")
    assert types == ["queued", "cancelled"]
    assert page.console_errors == []


def test_with_auth_on_the_key_unlocks_the_page_and_the_stream_uses_the_job_token(page, live_server, make_clip):
    from playwright.sync_api import expect

    key = "a-key-long-enough-for-the-check"
    server = live_server(api_keys=[key])
    page.goto(server.url)
    expect(page.locator("#form-error")).to_have_text(
        "This server needs an API key: enter it under “Server key” at the top."
    )
    page.click(".key summary")
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    expect(page.locator("#model option")).not_to_have_count(0)
    expect(page.locator("#form-error")).to_be_hidden()

    _choose_and_submit(page, make_clip(seconds=4.0))
    expect(page.locator("#stems")).to_have_attribute("data-ready", "true", timeout=60_000)
    expect(page.locator("#stems li.stem")).to_have_count(4)
    assert page.console_errors == []


class _AudioHandler(http.server.SimpleHTTPRequestHandler):
    """Another origin serving the clip; `/open/…` allows cross-origin reads, `/closed/…` does not."""

    def end_headers(self) -> None:
        if self.path.startswith("/open/"):
            self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def translate_path(self, path: str) -> str:
        return super().translate_path("/" + path.split("/", 2)[-1])

    def log_message(self, *args) -> None:
        pass


def test_a_song_can_be_dropped_or_linked(page, live_server, make_clip):
    from playwright.sync_api import expect

    fake = SteppedPipeline(timeout_s=120)
    server = live_server(pipeline=fake, max_concurrent=1)
    clip = make_clip(seconds=1.0)
    handler = functools.partial(_AudioHandler, directory=str(clip.parent))
    other_origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other_origin.serve_forever, daemon=True).start()
    page.goto(server.url)
    expect(page.locator("#model option")).not_to_have_count(0)
    try:
        # Jobs are accepted but wait in the stepped pipeline: only the upload matters here.
        page.evaluate(
            """bytes => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], 'dropped.wav', {type: 'audio/wav'}));
            document.querySelector('#drop-zone').dispatchEvent(
                new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
            list(clip.read_bytes()),
        )
        expect(page.locator("#drop-text")).to_have_text("Chosen: dropped.wav")
        page.click("#submit")
        expect(page.locator("#job")).to_be_visible()
        first = page.evaluate("window.musicsep.state.jobId")

        page.set_input_files("#file", [])
        port = other_origin.server_address[1]
        page.fill("#url", f"http://127.0.0.1:{port}/open/{clip.name}")
        page.click("#submit")
        page.wait_for_function(f"window.musicsep.state.jobId !== {first!r}")

        page.fill("#url", f"http://127.0.0.1:{port}/closed/{clip.name}")
        page.click("#submit")
        expect(page.locator("#form-error")).to_contain_text("could not be read from this browser")
        jobs = httpx.get(f"{server.url}/api/v1/jobs", timeout=30).json()["jobs"]
        assert len(jobs) == 2
    finally:
        fake.release()
        other_origin.shutdown()
    assert page.console_errors == []
