"""The sync (httpx) and async (aiohttp) clients against a live server: typed events, downloads,
errors, and no server code imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from http_target import http_target
from musicsep.clients import AsyncClient, Client, Completed, Failed, Progress, Queued, ServerError, Started, Stem


def test_sync_separate_yields_typed_events_and_downloads(live_server, make_clip, tmp_path):
    server = live_server()
    with Client(server.url) as client:
        events = list(client.separate(make_clip(seconds=3.0), stems=["vocals", "drums"]))
        assert isinstance(events[0], Queued)
        assert any(isinstance(e, Started) for e in events)
        progress = [e for e in events if isinstance(e, Progress)]
        assert progress and progress[-1].percent == 100.0
        assert [e.percent for e in progress] == sorted(e.percent for e in progress)
        assert {e.name for e in events if isinstance(e, Stem)} == {"vocals", "drums"}
        completed = events[-1]
        assert isinstance(completed, Completed)
        saved = client.download_all(completed, tmp_path)
        for name, path in saved.items():
            assert path.stat().st_size == completed.stems[name]["bytes"]
            assert path.suffix == ".wav"


def test_an_ensemble_job_runs_its_models_and_started_names_them(live_server, make_clip):
    """Ensemble options go client -> form -> job spec -> engine request; `started` names what ran."""
    server = live_server()
    with Client(server.url) as client:
        events = list(
            client.separate(
                make_clip(seconds=2.0),
                ensemble=["tiny_htdemucs", "tiny_hdemucs"],
                ensemble_method="avg_wave",
                ensemble_weights=[2.0, 1.0],
                stems=["vocals"],
            )
        )
    assert not isinstance(events[-1], Failed), events[-1].raw
    started = next(e for e in events if isinstance(e, Started))
    assert started.model == "tiny_htdemucs+tiny_hdemucs"
    assert started.raw["requested_model"] == started.model
    assert isinstance(events[-1], Completed), events[-1]
    assert set(events[-1].stems) == {"vocals"}


def test_sync_submit_follow_resume_and_errors(live_server, make_clip):
    server = live_server()
    with Client(server.url) as client:
        accepted = client.submit(make_clip(seconds=2.0), two_stems="vocals")
        events = list(client.events(accepted["job_id"]))
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        assert set(events[-1].stems) == {"vocals", "no_vocals"}
        tail = list(client.events(accepted["events_url"], last_event_id=events[-3].id))
        assert [e.id for e in tail] == [e.id for e in events[-2:]]
        assert list(client.events(accepted["job_id"], last_event_id=events[-1].id)) == []
        with pytest.raises(ServerError) as missing:
            client.job("0" * 32)
        assert missing.value.status == 404 and missing.value.code == "job_not_found"
        assert missing.value.request_id


def test_async_client_submit_events_download(live_server, make_clip, tmp_path):
    server = live_server()
    clip = make_clip(seconds=2.0)

    async def scenario() -> tuple[list, dict]:
        async with AsyncClient(server.url) as client:
            accepted = await client.submit(clip, stems="vocals")
            events = [event async for event in client.events(accepted["job_id"])]
            files = await client.download_all(events[-1], tmp_path)
            streamed = [event async for event in client.separate(clip, stems="bass")]
            assert isinstance(streamed[-1], Completed) and set(streamed[-1].stems) == {"bass"}
            return events, files

    events, files = asyncio.run(scenario())
    assert isinstance(events[-1], Completed)
    assert files["vocals"].stat().st_size == events[-1].stems["vocals"]["bytes"]


def test_async_client_raises_the_envelope(live_server, make_clip):
    server = live_server()

    async def scenario() -> ServerError:
        async with AsyncClient(server.url) as client:
            with pytest.raises(ServerError) as refused:
                await client.submit(make_clip(seconds=1.0), model="no_such_model")
            return refused.value

    error = asyncio.run(scenario())
    assert error.status == 422 and error.code == "model_unavailable"


def test_both_clients_submit_an_audio_url_and_a_refusal_is_a_failed_event(live_server, make_clip):
    server = live_server(allow_loopback_urls=True)  # test-only: the song is served on 127.0.0.1
    with http_target() as target:
        target.audio = make_clip(seconds=2.0).read_bytes()
        song = f"{target.url}/audio"
        with Client(server.url) as client:
            accepted = client.submit(audio_url=song, stems=["vocals"], analyze=False)
            done = client.wait(accepted["job_id"])
            refused = client.wait(client.submit(audio_url="http://10.0.0.1/a.wav")["job_id"])
            with pytest.raises(TypeError, match="either a file"):
                client.submit(make_clip(seconds=1.0), audio_url=song)

        async def scenario() -> list:
            async with AsyncClient(server.url) as client:
                return [event async for event in client.separate(audio_url=song, stems="bass", analyze=False)]

        streamed = asyncio.run(scenario())
    assert isinstance(done, Completed) and set(done.stems) == {"vocals"}
    assert isinstance(refused, Failed) and refused.code == "url_refused"
    assert refused.message == "audio_url refused: 10.0.0.1 is a private address, not a public one"
    assert isinstance(streamed[-1], Completed) and set(streamed[-1].stems) == {"bass"}
    assert [path for path, _ in target.requests] == ["/audio", "/audio"]


def test_clients_import_no_server_code_and_no_torch():
    code = (
        "import sys, musicsep.clients; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'demucs', 'fastapi', 'starlette') "
        "or m.startswith(('musicsep.api', 'musicsep.service', 'musicsep.model'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_health_reports_queue_and_models(live_server):
    server = live_server()
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["device"] == "cpu" and health["dependencies"] == {}
    assert health["queue_depth"] == 0 and health["slots"] == 1
    loaded = httpx.post(f"{server.url}/api/v1/models/tiny_htdemucs/load", json={"device": "cpu"}).json()
    assert loaded["models_loaded"] == ["tiny_htdemucs"] and loaded["device"] == "cpu"
    assert "tiny_htdemucs" in httpx.get(f"{server.url}/health").json()["models_loaded"]
    metrics = httpx.get(f"{server.url}/metrics").text
    for name in ("musicsep_jobs{", "musicsep_queue_depth", "musicsep_separation_seconds", "musicsep_realtime_factor"):
        assert name in metrics


def test_links_on_another_host_are_fetched_without_the_api_key(tmp_path):
    """Stems stored in S3 arrive as presigned links to the bucket: both clients fetch those
    without the API key, which is sent to the musicsep server only."""
    with http_target() as bucket:
        bucket.audio = b"stem bytes"
        with Client("http://127.0.0.1:9", api_key="secret-key") as client:
            saved = client.download(f"{bucket.url}/audio", tmp_path / "sync.wav")

        async def fetch() -> None:
            async with AsyncClient("http://127.0.0.1:9", api_key="secret-key") as client:
                await client.download(f"{bucket.url}/audio", tmp_path / "async.wav")

        asyncio.run(fetch())
    assert saved.read_bytes() == (tmp_path / "async.wav").read_bytes() == b"stem bytes"
    assert len(bucket.requests) == 2
    assert all("authorization" not in {k.lower() for k in headers} for _, headers in bucket.requests)
