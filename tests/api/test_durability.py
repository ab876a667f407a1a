"""Must-be-true 5: kill -9 with one job running and two queued; after a restart all three
complete (the running one re-run) and their event ids continue without gaps."""

from __future__ import annotations

import httpx

from musicsep.clients.sse import SSEParser
from server_harness import spawn_server, stream_events


def _env(tmp_path, tiny_model_repo) -> dict[str, str]:
    return {
        "MUSICSEP_DATA_DIR": str(tmp_path / "data"),
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
        "MUSICSEP_MAX_CONCURRENT": "1",
    }


def _submit(url: str, clip) -> dict:
    with clip.open("rb") as handle:
        response = httpx.post(f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data={"analyze": "false"},
                              timeout=60)
    assert response.status_code == 202
    return response.json()


def _read_until_progress(url: str, after: int = 0) -> int:
    """Follow (after id `after`) until a progress event; returns its id, then drops the connection."""
    parser = SSEParser()
    headers = {"Last-Event-ID": str(after)} if after else {}
    with httpx.stream("GET", url, headers=headers, timeout=120) as response:
        for text in response.iter_text():
            for message in parser.feed(text):
                if message.event == "progress":
                    return int(message.id)
    raise AssertionError("the stream ended before any progress")


def test_kill_9_then_restart_completes_everything(tmp_path, tiny_model_repo, make_clip):
    env = _env(tmp_path, tiny_model_repo)
    log = tmp_path / "server.log"
    server = spawn_server(env, log)
    try:
        running = _submit(server.url, make_clip(seconds=40.0))
        queued = [_submit(server.url, make_clip(seconds=2.0, seed=n)) for n in (1, 2)]
        assert [job["position"] for job in queued] == [1, 2]
        seen_before_kill = _read_until_progress(server.url + running["events_url"])
        server.kill()
    finally:
        server.terminate()

    restarted = spawn_server(env, log)
    try:
        for job in (running, *queued):
            url = restarted.url + job["events_url"]
            status, full = stream_events(url)
            assert status == 200
            assert [event_id for event_id, _, _ in full] == list(range(1, len(full) + 1))
            assert [kind for _, kind, _ in full if kind in ("completed", "failed", "cancelled")] == ["completed"]
            assert httpx.get(restarted.url + job["status_url"]).json()["status"] == "completed"
        # The running job: its log goes on after what a watcher saw before the kill, re-queued with a reason.
        status, resumed = stream_events(restarted.url + running["events_url"], last_event_id=seen_before_kill)
        assert resumed[0][0] == seen_before_kill + 1
        reasons = [data.get("reason") for _, kind, data in resumed if kind == "queued"]
        assert any(reason and "restarted" in reason for reason in reasons)
        assert httpx.get(restarted.url + running["status_url"]).json()["attempts"] == 2
    finally:
        restarted.terminate()


def test_a_job_running_at_two_crashes_fails_with_a_reason(tmp_path, tiny_model_repo, make_clip):
    """Re-queued once after the first crash, failed (never left running) after the second."""
    env = _env(tmp_path, tiny_model_repo)
    log = tmp_path / "server.log"
    clip = make_clip(seconds=40.0)
    job, seen = None, 0
    for _ in range(2):
        server = spawn_server(env, log)
        try:
            job = job or _submit(server.url, clip)
            # A progress event newer than any seen before: this run is separating when it dies.
            seen = _read_until_progress(server.url + job["events_url"], after=seen)
            server.kill()
        finally:
            server.terminate()
    restarted = spawn_server(env, log)
    try:
        status, events = stream_events(restarted.url + job["events_url"])
        assert events[-1][1] == "failed"
        assert events[-1][2]["code"] == "worker_lost"
        assert "stopped while running" in events[-1][2]["message"]
        assert httpx.get(restarted.url + "/health").json()["running"] == 0
    finally:
        restarted.terminate()
