"""Key and tempo as musicians read them: the page's spelling of the analysis' sharp-only keys and
the half/double tempo it offers when the beat tracker is unsure (the page's own module, in the
browser, served by a real server)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_keys_are_spelled_as_charts_write_them_and_unsure_tempi_offer_half_and_double(page, live_server):
    server = live_server()
    page.goto(server.url)
    spelled = page.evaluate(
        """async () => {
        const { keyText, spellKey, tempoText } = await import('/static/js/musickey.js');
        const keys = ['A# major', 'D# major', 'F# major', 'C# major', 'G# major', 'D# minor', 'A# minor',
                      'C# minor', 'G# minor', 'E minor', 'C major'].map(spellKey);
        return {
            keys,
            withConfidence: keyText({label: 'A# major', confidence: 0.62}),
            serverSpelled: keyText({label: 'A# major', name: 'Bb major', confidence: 0.5}),
            none: keyText({label: null, reason: 'too short'}),
            sure: tempoText({bpm: 120.4, confidence: 0.9}),
            unsure: tempoText({bpm: 120, confidence: 0.2}),
            serverAlternatives: tempoText({bpm: 90, confidence: 0.2, alternatives: [{bpm: 45}, {bpm: 180}]}),
            bestTwo: tempoText({bpm: 90, confidence: 0.2, alternatives: [
                {bpm: 45, score: 0.1}, {bpm: 180, score: 0.3}, {bpm: 60, score: 0.6}, {bpm: 135, score: 0.2}]}),
        };
    }"""
    )
    assert spelled["keys"] == [
        "Bb major",
        "Eb major",
        "F# major",
        "Db major",
        "Ab major",
        "Eb minor",
        "Bb minor",
        "C# minor",
        "G# minor",
        "E minor",
        "C major",
    ]
    assert spelled["withConfidence"] == "Bb major (confidence 62%)"
    assert spelled["serverSpelled"] == "Bb major (confidence 50%)"
    assert spelled["none"] == "too short"
    assert spelled["sure"] == "120 BPM"
    assert spelled["unsure"] == "120 BPM (or 60 / 240: low confidence)"
    assert spelled["serverAlternatives"] == "90 BPM (or 45 / 180: low confidence)"
    assert spelled["bestTwo"] == "90 BPM (or 60 / 180: low confidence)"  # the two best-scored of four readings
    assert page.console_errors == []
