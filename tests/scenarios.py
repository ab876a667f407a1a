"""The server's end-to-end scenarios, written once and run against both deployments.

tests/api runs them on the embedded server (one process: SQLite, local files, worker threads);
tests/scaleout/test_cluster_scenarios.py runs the very same functions on the scale-out deployment
(MUSICSEP_QUEUE=celery, MUSICSEP_STORAGE=s3, two API processes, one Celery worker). Each function
takes the API base URLs: with two, watchers and reconnects alternate between the processes.
Links in events are paths on the API (embedded) or absolute presigned bucket URLs (S3); `link`
resolves both, so the assertions do not depend on the deployment.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import httpx
import numpy as np
import soundfile as sf

from musicsep.clients.sse import SSEParser
from server_harness import TERMINAL, stream_events

Events = list[tuple[int, str, dict]]

#: Stem names that try to leave a job's folder (dot segments, encoded slashes, the job's input and
#: the signing key): a caller with credentials gets 404, a link signed for another stem 403 or 404.
PATH_TRICKS = [
    "nope",
    "..",
    "%2e%2e",
    "..%2Finput",
    "%2e%2e%2f%2e%2e%2fsigning.key",
    "vocals%2F..%2F..%2Finput",
    "input",
]


def link(api: str, url: str) -> str:
    """An event's link as a URL to fetch: relative ones are on the API, absolute ones elsewhere."""
    return urljoin(api + "/", url)


def post_job(api: str, clip: Path, **fields: Any) -> dict:
    """POST /api/v1/jobs with an upload; the 202 answer."""
    with clip.open("rb") as handle:
        reply = httpx.post(
            f"{api}/api/v1/jobs",
            files={"file": ("song.wav", handle)},
            data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()},
            timeout=60,
        )
    assert reply.status_code == 202, reply.text
    return reply.json()


def post_url_job(api: str, audio_url: str, **fields: Any) -> dict:
    """POST /api/v1/jobs with a JSON `audio_url` body; the 202 answer."""
    reply = httpx.post(f"{api}/api/v1/jobs", json={"audio_url": audio_url, **fields}, timeout=60)
    assert reply.status_code == 202, reply.text
    return reply.json()


def run_to_end(api: str, accepted: dict) -> Events:
    """The whole log of an accepted job, read to its terminal event."""
    status, events = stream_events(link(api, accepted["events_url"]))
    assert status == 200
    assert events and events[-1][1] in TERMINAL, events
    return events


def engine_stems(clip: Path, model_repo: Path, out_dir: Path, threads: int | None = None) -> dict[str, np.ndarray]:
    """What the engine alone makes of `clip` with the tiny model: the reference for served stems.

    `threads`: run with that many torch threads, as the process that ran the job did. Sums taken
    in another order round a few int16 samples one step the other way, so a reference for a
    worker started with OMP_NUM_THREADS=1 must use one thread too.
    """
    import torch

    from musicsep.model.loading import ModelLoader
    from musicsep.model.separate import SeparationRequest, separate_file

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        result = separate_file(
            clip,
            out_dir,
            SeparationRequest(model="tiny_htdemucs", device="cpu"),
            loader=ModelLoader(repo=model_repo, offline=True),
        )
    finally:
        torch.set_num_threads(before)
    return {name: sf.read(path, dtype="int16")[0] for name, path in result.stems.items()}


def download_stems(api: str, stems: dict[str, dict]) -> dict[str, bytes]:
    """Every stem of a `completed` event, fetched from its link; sizes checked against the event."""
    files = {}
    for name, info in stems.items():
        reply = httpx.get(link(api, info["url"]), timeout=30)
        assert reply.status_code == 200, (name, reply.status_code)
        assert len(reply.content) == info["bytes"]
        files[name] = reply.content
    return files


async def _watch(url: str) -> tuple[Any, bytes, Events]:
    parser = SSEParser()
    events: Events = []
    raw = b""
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=120)) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            raw += chunk
            for message in parser.feed(chunk.decode()):
                events.append((int(message.id), message.event, json.loads(message.data)))
                if message.event in TERMINAL:
                    return resp.headers.copy(), raw, events
    return resp.headers.copy(), raw, events


def three_watchers_see_one_log(apis: list[str], clip: Path, expected: dict[str, np.ndarray]) -> tuple[str, Events]:
    """Three EventSource watchers (spread over the API processes) get the same log, ending in
    `completed`, whose stems download and equal the engine's output. Returns (job id, log)."""
    accepted = post_job(apis[0], clip)
    urls = [link(apis[i % len(apis)], accepted["events_url"]) for i in range(3)]

    async def three() -> list:
        return await asyncio.gather(*(_watch(url) for url in urls))

    watched = asyncio.run(three())
    sequences = [events for _, _, events in watched]
    assert sequences[0] == sequences[1] == sequences[2]
    events = sequences[0]
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    assert all(data["event"] == kind for _, kind, data in events)
    assert [kind for _, kind, _ in events if kind in TERMINAL] == ["completed"]
    assert events[-1][1] == "completed"
    assert {"queued", "started", "progress", "analysis", "stem"} <= {kind for _, kind, _ in events}
    analysis = events[-1][2]["analysis"]
    assert abs(analysis["duration_s"] - sf.info(str(clip)).duration) < 0.05
    assert {"tempo", "key", "loudness"} <= set(analysis)
    headers, raw, _ = watched[0]
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert raw.startswith(b"retry: ")

    served = download_stems(apis[-1], events[-1][2]["stems"])
    assert set(served) == set(expected)
    for name, body in served.items():
        np.testing.assert_array_equal(sf.read(io.BytesIO(body), dtype="int16")[0], expected[name])

    # A reconnect after the terminal event is told there is nothing more, on any process.
    for api in apis:
        assert (
            httpx.get(
                link(api, accepted["events_url"]), headers={"Last-Event-ID": str(events[-1][0])}, timeout=30
            ).status_code
            == 204
        )
    return accepted["job_id"], events


def resume_at_random_points(apis: list[str], clip: Path) -> None:
    """At least 20 disconnects at seeded-random points, live and after the end, each reconnect
    going to the next API process with Last-Event-ID: nothing missed, nothing twice."""
    job_id = post_job(apis[0], clip)["job_id"]
    urls = [f"{api}/api/v1/jobs/{job_id}/events" for api in apis]
    rng = random.Random(20240601)
    received: Events = []
    reconnects = 0
    for attempt in range(500):  # bounded: each pass reads at least one event or ends
        status, events = stream_events(
            urls[attempt % len(urls)], last_event_id=received[-1][0] if received else 0, stop_after=rng.randint(1, 2)
        )
        if status == 204:
            break
        assert status == 200
        received.extend(events)
        reconnects += 1
    assert reconnects >= 20
    for url in urls:
        status, full = stream_events(url)
        assert status == 200 and received == full
    assert [event_id for event_id, _, _ in received] == list(range(1, len(received) + 1))
    assert [kind for _, kind, _ in received if kind in TERMINAL] == ["completed"]


def disconnect_cancels_post_separate(apis: list[str], long_clip: Path, short_clip: Path) -> tuple[str, dict]:
    """A POST /separate stream left mid-separation cancels its job within a chunk, and a job
    queued behind it then runs to the end. Returns (the cancelled job's id, the second's 202)."""
    parser = SSEParser()
    with (
        long_clip.open("rb") as handle,
        httpx.stream(
            "POST",
            f"{apis[0]}/api/v1/separate",
            files={"file": ("long.wav", handle)},
            headers={"Accept": "text/event-stream"},
            timeout=120,
        ) as response,
    ):
        first_id = response.headers["x-job-id"]
        second = post_job(apis[-1], short_clip)
        seen: list[str] = []
        for text in response.iter_text():
            seen += [m.event for m in parser.feed(text)]
            if "progress" in seen:
                break  # mid-separation: leave, closing the connection
    assert run_to_end(apis[-1], second)[-1][1] == "completed"
    status, first_events = stream_events(f"{apis[-1]}/api/v1/jobs/{first_id}/events")
    assert [kind for _, kind, _ in first_events if kind in TERMINAL] == ["cancelled"]
    assert first_events[-1][2]["reason"] == "client disconnected"
    last_progress = [data for _, kind, data in first_events if kind == "progress"][-1]
    assert last_progress["percent"] < 100, "the job ran to its end instead of stopping"
    return first_id, second


def range_and_disposition(url: str, info: dict) -> None:
    """A stem link serves the whole file as an attachment, and a byte range of it (206)."""
    whole = httpx.get(url, timeout=30)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["content-disposition"].startswith("attachment;")
    assert len(whole.content) == info["bytes"]
    part = httpx.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{info['bytes']}"
    assert part.content == whole.content[100:200]


def audio_url_job_equals_upload(apis: list[str], clip: Path, target: Any) -> Events:
    """An `audio_url` job (served by `target`, an http_target) completes with the same stem
    files as an upload of the same bytes. Returns the URL job's log."""
    target.audio = clip.read_bytes()
    by_url = run_to_end(apis[-1], post_url_job(apis[0], f"{target.url}/audio", analyze=False))
    uploaded = run_to_end(apis[-1], post_job(apis[0], clip, analyze=False))
    assert by_url[-1][1] == "completed", by_url[-1]
    assert uploaded[-1][1] == "completed", uploaded[-1]
    assert "fetch_s" in by_url[-1][2]["timings"]
    assert download_stems(apis[-1], by_url[-1][2]["stems"]) == download_stems(apis[0], uploaded[-1][2]["stems"])
    return by_url


def audio_url_refused(api: str, audio_url: str) -> str:
    """A job whose `audio_url` the server must not fetch: accepted (202), then one `failed`
    event before any model work, with code `url_refused`. Returns the event's message."""
    events = run_to_end(api, post_url_job(api, audio_url, analyze=False))
    kinds = [kind for _, kind, _ in events]
    assert kinds[-1] == "failed" and "started" not in kinds, events
    failed = events[-1][2]
    assert failed["code"] == "url_refused", failed
    assert failed["message"].startswith("audio_url refused: ")
    assert "Traceback" not in failed["message"] and 'File "' not in failed["message"]
    return failed["message"]


def _post_keyed(api: str, clip: bytes, **fields: str) -> httpx.Response:
    return httpx.post(f"{api}/api/v1/jobs", files={"file": ("song.wav", clip)}, data=fields, timeout=60)


def idempotency_replays_and_conflicts(apis: list[str], clip: Path, key: str) -> None:
    """Idempotency keys: a key with the same body is the first job (on any API process); with
    other options or another file it is 409 `idempotency_conflict` naming the first job."""
    audio = clip.read_bytes()
    first = _post_keyed(apis[0], audio, idempotency_key=key, analyze="false", stems="vocals")
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    again = _post_keyed(apis[-1], audio, idempotency_key=key, analyze="false", stems="vocals")
    assert again.status_code == 202 and again.json()["job_id"] == job_id
    assert again.headers["idempotent-replayed"] == "true"
    other_file = audio[:-4] + bytes(4)  # same length and options, other samples
    for other in ({"audio": audio, "stems": "drums"}, {"audio": other_file, "stems": "vocals"}):
        conflict = _post_keyed(apis[-1], other["audio"], idempotency_key=key, analyze="false", stems=other["stems"])
        assert conflict.status_code == 409, conflict.text
        error = conflict.json()["error"]
        assert error["code"] == "idempotency_conflict"
        assert error["job_id"] == job_id and job_id in error["message"]
    assert run_to_end(apis[-1], first.json())[-1][1] == "completed"
