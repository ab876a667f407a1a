"""musicsep.protocol: the job options a caller sends, checked once, and the event vocabulary.

What a user sees of it is the validation message of a bad option (the API's 422 carries it) and
that the clients import it without the server's dependencies.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from musicsep.protocol import (
    EVENT_TYPES,
    FAILURE_CODES,
    MODEL_NAME_PATTERN,
    OPTION_NAMES,
    OUTPUT_FORMATS,
    STEM_FILES,
    TERMINAL_EVENTS,
    JobParams,
    is_model_name,
)


def _message(**params: object) -> str:
    with pytest.raises(ValidationError) as caught:
        JobParams(**params)
    return str(caught.value)


def test_weights_must_match_the_ensemble_one_for_one():
    message = _message(ensemble=["htdemucs", "htdemucs_ft"], ensemble_weights=[1.0, 2.0, 3.0])
    assert "3 weights for 2 ensemble models" in message


def test_weights_without_an_ensemble_are_refused():
    assert "ensemble_weights needs an ensemble" in _message(ensemble_weights=[1.0, 1.0])


@pytest.mark.parametrize("weights", [[0.0, 0.0], [1.0, -2.0], [1.0, float("nan")], [1.0, float("inf")]])
def test_weights_are_non_negative_numbers_not_all_zero(weights):
    assert "non-negative numbers, not all zero" in _message(ensemble=["a", "b"], ensemble_weights=weights)
    assert JobParams(ensemble=["a", "b"], ensemble_weights=[1.0, 0.0]).ensemble_weights == (1.0, 0.0)


@pytest.mark.parametrize("method", ["median_wave", "max_spec", "min_spec"])
def test_weights_apply_to_avg_wave_only(method):
    message = _message(ensemble=["a", "b"], ensemble_method=method, ensemble_weights=[1.0, 2.0])
    assert f"avg_wave only, not to {method}" in message


def test_an_unknown_ensemble_method_names_the_methods():
    message = _message(ensemble=["a", "b"], ensemble_method="mean")
    assert "'avg_wave', 'median_wave', 'max_spec' or 'min_spec'" in message


def test_an_ensemble_has_two_to_four_models():
    assert "at most 4 items" in _message(ensemble="a,b,c,d,e")
    assert "at least 2 items" in _message(ensemble=["a"])
    assert JobParams(ensemble="a,b,c,d").ensemble == ("a", "b", "c", "d")


@pytest.mark.parametrize("name", ["../htdemucs", ".hidden", "-x", "a/b", "ｈｔdemucs", "x" * 65, "a b"])
def test_an_ensemble_name_that_is_not_a_model_name_is_refused(name):
    message = _message(ensemble=["htdemucs", name])
    assert "model names are 1 to 64 letters" in message
    assert not is_model_name(name)


def test_each_ensemble_model_is_named_once():
    assert "name each ensemble model once" in _message(ensemble=["htdemucs", "htdemucs"])


def test_the_model_name_rule_is_the_model_layers():
    from musicsep.model import names

    assert MODEL_NAME_PATTERN == names.MODEL_NAME_PATTERN
    for name in ["htdemucs", "UVR-MDX-NET-Inst_HQ_4", "model_bs_roformer_ep_317_sdr_12.9755", "_x", "9", "x" * 64]:
        assert is_model_name(name) and names.is_model_name(name)
    for name in ["", ".x", "-x", "a/b", "a\\b", "x" * 65, "é", "a\x00"]:
        assert not is_model_name(name) and not names.is_model_name(name)


def test_a_form_sends_lists_as_comma_separated_text():
    params = JobParams(stems="vocals, drums", ensemble="htdemucs,htdemucs_ft", ensemble_weights="2,1")
    assert params.stems == ("vocals", "drums")
    assert params.ensemble == ("htdemucs", "htdemucs_ft")
    assert params.ensemble_weights == (2.0, 1.0)
    assert JobParams(stems="").stems is None


def test_a_lossy_bitrate_is_checked_for_its_format():
    assert "between 32 and 320 kbps" in _message(format="mp3", bitrate=400)
    assert JobParams(format="ogg", bitrate=400).bitrate == 400
    assert JobParams(format="flac", bitrate=400).bitrate == 400  # ignored by lossless formats


def test_params_round_trip_through_json():
    params = JobParams(
        model="htdemucs",
        stems=["vocals"],
        format="mp3",
        bitrate=192,
        shifts=2,
        overlap=0.5,
        segment=7.0,
        ensemble=["a", "b"],
        ensemble_method="avg_wave",
        ensemble_weights=[1, 3],
        payload="base64",
        analyze=False,
        priority=5,
        webhook_url="https://example.com/hook",
        idempotency_key="k1",
    )
    assert JobParams.model_validate_json(params.model_dump_json()) == params
    assert JobParams.model_validate(json.loads(params.model_dump_json())) == params


def test_engine_fields_are_the_engines_request_fields():
    from musicsep.model.separate import SeparationRequest

    fields = JobParams(model="htdemucs", ensemble=["a", "b"], ensemble_weights=[1, 2]).engine_fields()
    request = SeparationRequest(**fields)  # every key is a field of the engine's request
    assert request.ensemble == ["a", "b"] and request.ensemble_weights == [1.0, 2.0]
    server_chosen = {"batch_size", "device", "precision"}
    assert set(fields) | server_chosen == {f.name for f in dataclasses.fields(SeparationRequest)}


def test_unknown_options_are_refused():
    assert "Extra inputs are not permitted" in _message(modle="htdemucs")
    assert "modle" not in OPTION_NAMES and "ensemble" in OPTION_NAMES


def test_event_vocabulary():
    assert TERMINAL_EVENTS == {"completed", "failed", "cancelled"}
    assert TERMINAL_EVENTS <= set(EVENT_TYPES)
    assert EVENT_TYPES[0] == "queued"


def test_failure_codes_cover_every_typed_error():
    from musicsep.model import errors
    from musicsep.service.fetch import UrlFetchFailed, UrlRefused

    typed = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.MusicsepError) and cls is not errors.MusicsepError
    }
    typed.discard("cancelled")  # a `cancelled` event, not a failure
    assert typed | {UrlRefused.code, UrlFetchFailed.code} <= FAILURE_CODES


def test_stem_files_are_what_the_encoders_write():
    from musicsep.model.audio import FORMATS

    assert tuple(FORMATS) == OUTPUT_FORMATS
    assert {name: (f.extension, f.media_type) for name, f in FORMATS.items()} == {
        name: (f.extension, f.media_type) for name, f in STEM_FILES.items()
    }


def test_the_protocol_imports_neither_torch_nor_fastapi():
    code = (
        "import sys, musicsep.protocol, musicsep.clients; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastapi', 'starlette', 'demucs'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


#: A JobSpec as the previous release stored it (SQLite `jobs.spec`, Redis `spec`): no ensemble,
#: clip, bitrate or other_method keys.
PREVIOUS_RELEASE_SPEC = (
    '{"model":"htdemucs","stems":["vocals","drums"],"two_stems":null,"format":"mp3","shifts":1,'
    '"overlap":0.5,"segment":null,"payload":"url","analyze":false,"priority":4,'
    '"webhook_url":"https://example.com/hook","idempotency_key":"k1","audio_url":null,'
    '"input_sha256":"' + "ab" * 32 + '"}'
)


def test_a_spec_stored_by_the_previous_release_still_loads():
    from musicsep.service.jobs import JobSpec

    spec = JobSpec.model_validate_json(PREVIOUS_RELEASE_SPEC)
    assert (spec.model, spec.stems, spec.format, spec.priority) == ("htdemucs", ("vocals", "drums"), "mp3", 4)
    assert spec.ensemble is None and spec.clip == "rescale" and spec.bitrate == 320
    assert JobSpec.model_validate(json.loads(PREVIOUS_RELEASE_SPEC)) == spec  # Redis keeps it as a dict
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec


def test_a_form_becomes_the_engines_request_through_one_model():
    from musicsep.api.schemas import SeparationForm
    from musicsep.service.pipeline import EngineOptions, separation_request

    form = SeparationForm(
        stems="vocals",
        format="flac",
        ensemble="htdemucs,htdemucs_ft",
        ensemble_weights="3,1",
        shifts=2,
        file="ignored: the upload's own field",
    )
    spec = form.to_spec("htdemucs")
    request = separation_request(spec, EngineOptions(device="cpu", precision="fp32", batch_size=2))
    assert (request.model, request.stems, request.format, request.shifts) == ("htdemucs", ["vocals"], "flac", 2)
    assert request.ensemble == ["htdemucs", "htdemucs_ft"] and request.ensemble_weights == [3.0, 1.0]
    assert (request.ensemble_method, request.device, request.batch_size) == ("avg_wave", "cpu", 2)


def test_a_title_is_stripped_and_an_empty_one_is_no_title():
    assert JobParams(title="  Song Title \t").title == "Song Title"
    assert JobParams(title="   ").title is None
    assert JobParams(title="Björk – Jóga 👩‍👩‍👧").title == "Björk – Jóga 👩‍👩‍👧"


@pytest.mark.parametrize("title", ["two\nlines", "bell\x07", "esc\x1b[31m", "bidi\u202eflip", "tab\tbed"])
def test_a_title_with_a_control_character_is_refused(title):
    assert "title must not contain control characters" in _message(title=title)


def test_a_title_over_the_limit_is_refused():
    assert "at most 200 are allowed" in _message(title="x" * 201)
    assert JobParams(title="x" * 200).title == "x" * 200
