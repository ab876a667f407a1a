"""A musician's session on a desktop and on a phone: two songs queued at once, both in the
library under their titles; the running job's card and then the player come into view; the
player plays before the stems are downloaded in full; the A-B loop repeats its region, 0.8x
tempo plays a quarter longer, the beats click, a muted stem's waveform dims, the mix with drums
muted downloads as one file equal to the sum of the other stems; rename and delete survive a
reload. Against a real server separating with the tiny Demucs model."""

from __future__ import annotations

import io
import shutil
from itertools import pairwise

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.browser

# The song played is long enough that a browser's read-ahead before play (about 1 MB a stem in
# Chromium) is a small part of it, as it is for a real song; the second one only needs to queue.
SONG_S = 24.0
SECOND_SONG_S = 3.0
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}

# Installed before the upload: whether the job card was on screen when its first progress showed,
# and every stage the bar went through (attributeOldValue keeps the ones a batch skipped past).
WATCH_THE_JOB = """() => {
    window.seen = {cardInView: null, stages: []};
    const inView = (element) => {
        const box = element.getBoundingClientRect();
        return box.top < innerHeight && box.bottom > 0 && box.height > 0;
    };
    new MutationObserver((records) => {
        for (const record of records) window.seen.stages.push(record.oldValue || '');
        window.seen.stages.push(document.querySelector('#job').dataset.stage || '');
    }).observe(document.querySelector('#job'), {attributes: true, attributeFilter: ['data-stage'],
                                                 attributeOldValue: true});
    new MutationObserver(() => {
        if (window.seen.cardInView === null) window.seen.cardInView = inView(document.querySelector('#job'));
    }).observe(document.querySelector('#progress'), {attributes: true, attributeFilter: ['value']});
}"""

# Plays from A for two loops and returns every clock reading on the way.
READ_THE_LOOP = """() => new Promise((resolve) => {
    const player = window.musicsep.player;
    const start = player.loops;
    const readings = [];
    const read = () => {
        readings.push(Number(document.querySelector('#clock').dataset.seconds));
        if (player.loops - start >= 2) resolve(readings);
        else requestAnimationFrame(read);
    };
    read();
})"""

# Media time against wall time over 1.5 s of playback.
MEASURE_THE_RATE = """() => new Promise((resolve) => {
    const player = window.musicsep.player;
    const media0 = player.position();
    const wall0 = performance.now();
    setTimeout(() => resolve((player.position() - media0) / ((performance.now() - wall0) / 1000)), 1500);
})"""


class StemBytes:
    """Bytes the browser received for stem files, from Chrome's network events (media included)."""

    def __init__(self, page) -> None:
        self.urls: dict[str, str] = {}
        self.total = 0
        session = page.context.new_cdp_session(page)
        session.on(
            "Network.requestWillBeSent", lambda event: self.urls.update({event["requestId"]: event["request"]["url"]})
        )
        session.on("Network.dataReceived", self._received)
        session.send("Network.enable")

    def _received(self, event) -> None:
        url = self.urls.get(event["requestId"], "")
        if "/stems/" in url and "/live/" not in url:  # the final files only, not the live segments
            self.total += event["encodedDataLength"] or event["dataLength"]


def _titled_clips(make_clip, tmp_path):
    paths = []
    for title, seconds in (("First Song", SONG_S), ("Second Song", SECOND_SONG_S)):
        path = tmp_path / f"{title}.wav"
        shutil.copy(make_clip(seconds=seconds), path)
        paths.append(path)
    return paths


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        """selector => { const box = document.querySelector(selector).getBoundingClientRect();
        return box.top < innerHeight && box.bottom > 0; }""",
        selector,
    )


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_practice_session_from_two_uploads_to_a_renamed_library(
    browser, live_server, make_clip, tmp_path, artifacts, viewport
):
    from playwright.sync_api import expect

    server = live_server(max_concurrent=1)
    context = browser.new_context(viewport=VIEWPORTS[viewport], accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    stem_bytes = StemBytes(page)
    try:
        page.goto(server.url)
        expect(page.locator("#model option")).not_to_have_count(0)
        page.evaluate(WATCH_THE_JOB)
        page.set_input_files("#file", [str(path) for path in _titled_clips(make_clip, tmp_path)])
        page.click("#submit")

        library = page.locator("#library-list")
        expect(library.locator("button.title", has_text="First Song")).to_have_count(1)
        expect(library.locator("button.title", has_text="Second Song")).to_have_count(1)
        page.wait_for_function("window.seen.cardInView !== null")
        assert page.evaluate("window.seen.cardInView")  # the running job's card came into view
        page.screenshot(path=str(artifacts / f"running-{viewport}.png"))

        expect(page.locator("#stems")).to_have_attribute("data-playable", "true", timeout=120_000)
        assert "analysing" in page.evaluate("window.seen.stages")
        expect(page.locator("#progress-text")).to_have_text("100%")
        expect(page.locator("#result")).to_be_in_viewport()
        expect(page.locator("#result-model")).to_have_text("Separated with tiny_htdemucs.")
        before_play = stem_bytes.total
        job_id = page.evaluate("window.musicsep.state.jobId")
        full = sum(stem["bytes"] for stem in httpx.get(f"{server.url}/api/v1/jobs/{job_id}").json()["stems"].values())
        # It played before the WAVs were downloaded. The live player, started by the upload's click,
        # usually hands over playing: then the song was heard while it separated, before any final
        # file was asked for (the media elements buffer ahead once they play, so their bytes by
        # now say nothing). Otherwise Play starts the final files with a fraction of them in.
        if page.evaluate("window.musicsep.player.playing"):
            assert page.evaluate("window.musicsep.timeline.live.firstSound.ms") > 0
        else:
            assert before_play < full / 4, (before_play, full)
            page.click("#play")
        page.wait_for_function("window.musicsep.player.position() > 0.2")

        page.evaluate("window.musicsep.player.seek(1.0)")
        page.click("#loop-a")
        page.evaluate("window.musicsep.player.seek(2.0)")
        page.click("#loop-b")
        loop = page.evaluate("window.musicsep.player.loop")
        readings = page.evaluate(READ_THE_LOOP)
        assert max(readings) < loop["b"] + 0.3 and min(readings[5:]) > loop["a"] - 0.3, readings
        assert any(later < earlier - 0.5 for earlier, later in pairwise(readings))  # it went back to A

        page.click("#loop-clear")
        page.evaluate("window.musicsep.player.seek(1.0)")
        page.fill("#tempo", "0.8")
        expect(page.locator("#tempo-text")).to_have_text("80%")
        rate = page.evaluate(MEASURE_THE_RATE)
        assert 0.7 < rate < 0.9, rate  # 0.8 s of song per second: the song plays 25 % longer

        page.check("#click")
        page.wait_for_function("window.musicsep.player.clicks >= 2")  # a click on each beat that passes

        drums = page.locator('li[data-stem="drums"] canvas.waveform')
        assert drums.evaluate("canvas => getComputedStyle(canvas).opacity") == "1"
        page.click('button[aria-label="Mute drums"]')
        expect(page.locator('li[data-stem="drums"]')).to_have_class("stem silent")
        page.wait_for_function(
            "Number(getComputedStyle(document.querySelector('li[data-stem=\"drums\"] canvas')).opacity) < 0.5"
        )
        expect(page.locator("#stems")).to_have_attribute("data-drawn", "true")
        page.screenshot(path=str(artifacts / f"player-{viewport}.png"), full_page=True)

        with page.expect_download() as exported:
            page.click("#export-mix")
        assert exported.value.suggested_filename == "First Song - mix.wav"
        mix, rate = sf.read(exported.value.path())
        assert abs(len(mix) / rate - SONG_S) < 0.05
        # Drums are muted: the mix is the sum of the other stems, within 16-bit encoding error.
        stems = httpx.get(f"{server.url}/api/v1/jobs/{job_id}").json()["stems"]
        others = [
            sf.read(io.BytesIO(httpx.get(server.url + stems[n]["url"]).content))[0] for n in stems if n != "drums"
        ]
        assert np.abs(mix - np.sum(others, axis=0)).max() < 1e-3

        expect(library.locator('li[data-status="completed"]')).to_have_count(2, timeout=120_000)
        page.click('button[aria-label="Rename First Song"]')
        page.fill('input[aria-label="New title for First Song"]', "Renamed Song")
        page.click("#library-list form.rename button[type=submit]")
        expect(library.locator("button.title", has_text="Renamed Song")).to_have_count(1)
        page.click('button[aria-label="Delete Second Song"]')
        expect(library.locator("button.title", has_text="Second Song")).to_have_count(0)
        page.reload()
        expect(library.locator("button.title", has_text="Renamed Song")).to_have_count(1)
        expect(library.locator("button.title")).to_have_count(1)
        page.fill("#library-search", "renamed")
        expect(library.locator("button.title")).to_have_count(1)
        page.fill("#library-search", "no such song")
        expect(library.locator("button.title")).to_have_count(0)
        page.fill("#library-search", "")
        page.locator("#library").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"library-{viewport}.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[viewport]["width"]
        assert errors == []
    finally:
        context.close()
