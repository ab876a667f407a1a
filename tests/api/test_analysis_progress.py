"""While a job analyses its track, its events say so (stage `analysing`, with the analysis' own
fraction while `percent` stays at 100), and the analysis carries the fields a page reads
(the key spelled as musicians write it: tests/model/test_analysis.py)."""

from __future__ import annotations

import httpx

from server_harness import stream_events


def test_an_analysing_job_reports_its_stage_and_fraction_before_the_analysis(live_server, make_clip):
    server = live_server()
    with make_clip(seconds=2.0).open("rb") as handle:
        accepted = httpx.post(
            f"{server.url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data={"analyze": "true"}, timeout=60
        ).json()
    _, events = stream_events(server.url + accepted["events_url"])
    types = [kind for _, kind, _ in events]
    assert types[-1] == "completed"
    analysing = [data for _, kind, data in events if kind == "progress" and data["stage"] == "analysing"]
    assert analysing, "the analysis shows up in the progress"
    fractions = [data["fraction"] for data in analysing]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b - a >= 0.01 for a, b in zip(fractions[:-2], fractions[1:-1], strict=True)), "thinned"
    first = next(i for i, (_, kind, data) in enumerate(events) if kind == "progress" and data["stage"] == "analysing")
    separation = [data["percent"] for _, kind, data in events[:first] if kind == "progress"]
    assert separation and separation[-1] == 100.0, "the analysis comes after the separation's 100 %"
    assert all(data["percent"] == 100.0 for data in analysing), "percent never goes back"
    assert types.index("analysis") > first
    analysis = events[-1][2]["analysis"]
    # Too short for a key (5 s): the spelled fields are there, null like the label, with the reason.
    assert analysis["key"]["name"] is None and analysis["key"]["label"] is None and analysis["key"]["reason"]
    assert analysis["tempo"]["alternatives"] == []
