"""Model names over HTTP: a model name that is a path is refused on every entry with
the error envelope; checks read no weights; `models/dsp/load` and an absent device are 4xx; a
model load takes an admission slot like a job instead of running beside one."""

from __future__ import annotations

import threading

import httpx
import pytest

from model_name_fixtures import model_places, weight_reads  # noqa: F401  (fixtures)
from server_harness import base_settings, start_server, wait_until

HOSTILE = [
    "../outside/evil",
    "../outside/evil_bag",
    "../../../../etc/nothere",
    "/etc/passwd",
    "./tiny_one",
    "././tiny_one",
    "%2e%2e/outside/evil",
    "tiny_one\x00",
    "..",
    ".tiny_one",
    "A" * 65,
]
#: Loopback is refused by the URL check before any connection (MUSICSEP_ALLOW_LOOPBACK_URLS is off).
REFUSED_URL = "http://127.0.0.1:9/song.wav"


def _envelope(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    return body["error"]


@pytest.fixture
def names_server(tmp_path, model_places):
    """`names_server(**settings)`: a live server whose model folder is `model_places.repo`."""
    started = []

    def _start(**overrides):
        started.append(start_server(base_settings(tmp_path / "data", model_places.repo, **overrides)))
        return started[-1]

    yield _start
    for server in started:
        server.stop()


@pytest.fixture
def server(names_server):
    return names_server(default_model="tiny_one", fallback="tiny_one,dsp")


@pytest.mark.parametrize("name", HOSTILE)
def test_model_names_that_are_paths_are_refused_on_every_entry(server, model_places, weight_reads, make_clip, name):
    """Was: `-F model=../outside/evil` was accepted (202) and `outside/evil.safetensors` loaded;
    `../../../../etc/nothere` was a 500."""
    weight_reads.watched.append(model_places.outside)
    clip = make_clip(seconds=1.0)
    with clip.open("rb") as handle:
        form = httpx.post(f"{server.url}/api/v1/jobs", data={"model": name}, files={"file": ("a.wav", handle)})
    as_json = httpx.post(f"{server.url}/api/v1/jobs", json={"audio_url": REFUSED_URL, "model": name})
    for response in (form, as_json):
        assert response.status_code == 422, response.text
        assert _envelope(response)["code"] in ("model_unavailable", "invalid_request")
    assert server.service.list() == []  # no job was created
    assert server.service.loader.loaded() == []
    assert weight_reads.count == 0 and weight_reads.opened == []


@pytest.mark.parametrize(
    "path_name",
    [
        "..",
        "%2e%2e",
        ".tiny_one",
        "tiny_one%00",
        "%2e%2e%2foutside%2fevil",
        "..%2f..%2f..%2f..%2fetc%2fnothere",
        "A" * 65,
        "no_such_model",
    ],
)
def test_the_load_route_refuses_names_that_are_not_names(server, weight_reads, path_name):
    response = httpx.post(f"{server.url}/api/v1/models/{path_name}/load")
    assert response.status_code in (404, 422), response.text
    _envelope(response)
    assert server.service.loader.loaded() == [] and weight_reads.count == 0


def test_server_start_and_an_unknown_model_read_no_weights(names_server, weight_reads, make_clip):
    """Was: the start checked the default model by loading it (then dropped it), and each job's
    validity check loaded a folder model that was not loaded yet."""
    server = names_server(default_model="tiny_one", fallback="none")
    assert weight_reads.count == 0
    clip = make_clip(seconds=1.0)
    with clip.open("rb") as handle:
        response = httpx.post(
            f"{server.url}/api/v1/jobs", data={"model": "no_such_model"}, files={"file": ("a.wav", handle)}
        )
    assert response.status_code == 422 and _envelope(response)["code"] == "model_unavailable"
    assert "no_such_model" in _envelope(response)["message"]
    assert weight_reads.count == 0


def test_loading_the_dsp_engine_is_not_a_500(server):
    """Was: 500 (the DSP separator has no `device` attribute)."""
    response = httpx.post(f"{server.url}/api/v1/models/dsp/load", timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "dsp" and body["device"] == "cpu" and "dsp" in body["models_loaded"]


def test_an_absent_device_is_a_422_that_names_the_devices(server):
    """Was: `{"device": "mps"}` on a CPU box was a 500."""
    import torch

    devices = ["mps"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        response = httpx.post(f"{server.url}/api/v1/models/tiny_one/load", json={"device": device}, timeout=60)
        assert response.status_code == 422, response.text
        error = _envelope(response)
        assert error["code"] == "device_unavailable"
        assert device in error["message"] and "cpu" in error["message"]
    assert server.service.loader.loaded() == []


def _held_server(live_server, **settings) -> tuple[object, threading.Event]:
    """A server whose jobs wait until the event is set, then run the real pipeline."""
    from musicsep.service.pipeline import run_pipeline

    gate = threading.Event()

    def held(*args, **kwargs):
        assert gate.wait(60), "the test never let the job go"
        return run_pipeline(*args, **kwargs)

    return live_server(pipeline=held, **settings), gate


def _running_job(server, clip) -> str:
    with clip.open("rb") as handle:
        job = httpx.post(f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}).json()
    wait_until(lambda: len(server.service.admission.running) == 1, 30, "the job to take the slot")
    return job["job_id"]


def test_a_model_load_waits_for_the_running_job_instead_of_running_beside_it(live_server, make_clip):
    """Was: the load ran at once, beside the job, on the same device (double the memory)."""
    server, gate = _held_server(live_server, max_concurrent=1, queue_size=4)
    job_id = _running_job(server, make_clip(seconds=1.0))
    answers: list[httpx.Response] = []
    loading = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{server.url}/api/v1/models/tiny_hdemucs/load", timeout=60))
    )
    loading.start()
    try:
        wait_until(lambda: answers or server.service.admission.depth == 1, 30, "the load to queue or finish")
        assert not answers, "the load ran while the job held the only slot"
        assert "tiny_hdemucs" not in server.service.loader.loaded()
        assert httpx.get(f"{server.url}/health").json()["queue_depth"] == 1
    finally:
        gate.set()
    loading.join(60)
    assert answers[0].status_code == 200, answers[0].text
    assert "tiny_hdemucs" in answers[0].json()["models_loaded"]
    wait_until(lambda: server.service.get(job_id).status.terminal, 60, "the job to end")
    assert server.service.get(job_id).status.value == "completed"
    assert server.service.admission.free_slots() == 1 and server.service.admission.depth == 0


def test_a_model_load_is_503_with_retry_after_when_busy_and_the_queue_is_full(live_server, make_clip):
    """Was: 200, the load ran beside the job whatever the queue held."""
    server, gate = _held_server(live_server, max_concurrent=1, queue_size=0)
    try:
        _running_job(server, make_clip(seconds=1.0))
        response = httpx.post(f"{server.url}/api/v1/models/tiny_hdemucs/load", timeout=60)
        assert response.status_code == 503, response.text
        assert _envelope(response)["code"] == "queue_full"
        assert int(response.headers["retry-after"]) > 0
        assert "tiny_hdemucs" not in server.service.loader.loaded()
    finally:
        gate.set()
