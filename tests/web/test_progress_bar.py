"""The job bar's stages and its ETA, from the page's own module in the browser: separation owns
90 % and the analysis the rest, and the ETA is the rate since the first finished chunk on the
server's clock, not the rate since the job began."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_eta_is_measured_from_the_first_chunk_and_analysis_has_its_own_share(page, live_server):
    server = live_server()
    page.goto(server.url)
    steps = page.evaluate(
        """async () => {
        const { JobProgress } = await import('/static/js/progress.js');
        const bar = new JobProgress();
        const seen = [];
        const step = (label, value) => seen.push([label, Math.round(value * 10) / 10, bar.stage, bar.detail]);
        // Ten seconds of loading and decoding, then one chunk every two seconds.
        step('decode', bar.progress({stage: 'decode', percent: 5, chunk: 0, chunks: 4, elapsed_s: 10}));
        step('chunk 1', bar.progress({stage: 'separate', percent: 28, chunk: 1, chunks: 4, elapsed_s: 12}));
        step('chunk 2', bar.progress({stage: 'separate', percent: 51, chunk: 2, chunks: 4, elapsed_s: 14}));
        step('written', bar.progress({stage: 'encode', percent: 100, chunk: 4, chunks: 4, elapsed_s: 19}));
        step('analysing', bar.progress({stage: 'analysing', percent: 50, chunk: 4, chunks: 4, elapsed_s: 20}));
        step('analysed', bar.analysed());
        step('completed', bar.completed());
        return seen;
    }"""
    )
    assert steps[0] == ["decode", 4.5, "decode", "Reading the song · chunk 0 of 4"]
    assert steps[1] == ["chunk 1", 25.2, "separate", "Separating · chunk 1 of 4"]  # one point: no rate yet
    # 20.7 % of the bar in 2 s since the first chunk: the 44.1 % left take about 5 s (from the
    # start of the job it would have been 12 s: the loading would count as separation).
    assert steps[2] == ["chunk 2", 45.9, "separate", "Separating · chunk 2 of 4 · about 5 s left"]
    assert steps[3][:3] == ["written", 90, "analysing"]
    assert steps[4][:3] == ["analysing", 94.5, "analysing"]
    assert [step[1] for step in steps[5:]] == [99, 100]
    assert page.console_errors == []
