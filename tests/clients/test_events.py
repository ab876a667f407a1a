"""The clients' typed events follow the protocol: one class per event type, the same terminal set."""

from __future__ import annotations

import json

import pytest

from musicsep.clients import events, views
from musicsep.clients.sse import SSEMessage
from musicsep.protocol import EVENT_TYPES, TERMINAL_EVENTS


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_event_type_of_the_protocol_parses_to_its_own_class(kind):
    event = events.parse_event(SSEMessage(event=kind, data=json.dumps({"event": kind}), id="7", retry=None))
    assert type(event).__name__ == kind.capitalize()
    assert (event.id, event.type) == (7, kind)
    assert event.terminal is (kind in TERMINAL_EVENTS)


def test_a_type_the_protocol_does_not_know_yet_is_a_plain_event_kept_whole():
    message = SSEMessage(event="warning", data='{"event": "warning", "text": "slow"}', id="3", retry=None)
    event = events.parse_event(message)
    assert type(event) is events.Event and not event.terminal
    assert event.raw["text"] == "slow"


def test_fields_the_server_adds_later_stay_in_raw():
    data = {"event": "failed", "code": "model_unavailable", "message": "no weights", "hint": "pull it"}
    event = events.parse_event(SSEMessage(event="failed", data=json.dumps(data), id="9", retry=None))
    assert isinstance(event, events.Failed) and event.terminal
    assert (event.code, event.raw["hint"]) == ("model_unavailable", "pull it")


def _parse(kind: str, data: dict) -> events.Event:
    return events.parse_event(SSEMessage(event=kind, data=json.dumps({"event": kind, **data}), id="2", retry=None))


def test_started_names_the_model_that_runs_and_why_it_is_not_the_one_asked():
    data = {
        "model": "dsp",
        "requested_model": "htdemucs_ft",
        "fallback_reason": "no weights for htdemucs_ft on this server",
        "device": "cpu",
        "stems": ["vocals", "no_vocals"],
        "duration_s": 12.5,
    }
    started = _parse("started", data)
    assert isinstance(started, events.Started)
    assert (started.model, started.requested_model, started.fallback_reason) == (
        "dsp",
        "htdemucs_ft",
        "no weights for htdemucs_ft on this server",
    )
    assert (started.device, started.stems, started.duration_s) == ("cpu", ["vocals", "no_vocals"], 12.5)
    older = _parse("started", {"model": "htdemucs", "device": "cuda", "stems": ["vocals"]})
    assert older.requested_model is None and older.fallback_reason is None and older.duration_s is None


def test_analysis_carries_typed_tempo_key_and_loudness_and_says_why_a_figure_is_missing():
    data = {
        "duration_s": 4.0,
        "tempo": {"bpm": None, "confidence": None, "beats": [], "reason": "no steady pulse"},
        "key": {"label": "A minor", "tonic": "A", "mode": "minor", "confidence": 0.8, "runner_up": "C major"},
        "loudness": {"lufs": -14.2, "peak_dbfs": -1.0, "reason": None, "true_peak_dbtp": -0.8},
    }
    analysis = _parse("analysis", data)
    assert isinstance(analysis, events.Analysis) and analysis.duration_s == 4.0
    assert analysis.tempo == events.Tempo(bpm=None, confidence=None, beats=[], reason="no steady pulse")
    assert (analysis.key.label, analysis.key.tonic, analysis.key.mode, analysis.key.runner_up) == (
        "A minor",
        "A",
        "minor",
        "C major",
    )
    assert (analysis.loudness.lufs, analysis.loudness.peak_dbfs) == (-14.2, -1.0)
    assert analysis.raw["loudness"]["true_peak_dbtp"] == -0.8
    completed = _parse("completed", {"stems": {}, "analysis": data, "timings": None})
    assert isinstance(completed, events.Completed) and completed.analysis.key == analysis.key
    assert completed.timings == {}


def test_a_job_view_without_the_newer_fields_reads_with_their_defaults():
    older = views.Job.from_json({"id": "abc", "status": "running", "model": "htdemucs", "created_at": 1.0})
    assert (older.title, older.source_name, older.requested_model, older.fallback) == (None, None, None, None)
    assert not older.finished
    newer = views.Job.from_json(
        {
            "id": "abc",
            "status": "completed",
            "title": "Song",
            "source_name": "Song.mp3",
            "model": "dsp",
            "requested_model": "htdemucs_ft",
            "fallback": {"from": "htdemucs_ft", "to": "dsp", "reason": "no weights"},
            "options": {"format": "flac"},
            "playlist": "later",
        }
    )
    assert newer.fallback == views.Fallback(from_="htdemucs_ft", to="dsp", reason="no weights")
    assert (newer.title, newer.source_name, newer.options, newer.finished) == (
        "Song",
        "Song.mp3",
        {"format": "flac"},
        True,
    )
    assert newer.raw["playlist"] == "later"
