"""The clients' typed events follow the protocol: one class per event type, the same terminal set."""

from __future__ import annotations

import json

import pytest

from musicsep.clients import events
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
