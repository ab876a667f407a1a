"""kill -9 with one job running and two queued: after a restart all three complete (the running
one re-run) and their event ids continue without gaps. kill -9
while uploads are arriving and being stored loses no accepted job and leaves no upload behind."""

from __future__ import annotations

import os
import signal
import socket
import struct
from pathlib import Path

import httpx

from musicsep.clients.sse import SSEParser
from server_harness import spawn_server, stream_events, wait_until


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
        response = httpx.post(
            f"{url}/api/v1/jobs", files={"file": ("song.wav", handle)}, data={"analyze": "false"}, timeout=60
        )
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


def _server_fds_under(pid: int, folder: Path) -> list[str]:
    """Targets of the server's open file descriptors inside `folder` (a spooled body, a copy)."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(folder)):
            targets.append(target)
    return targets


def _stalled_upload(url: str, body: bytes, boundary: str, send: int) -> socket.socket:
    """A client that announces `body`, sends its first `send` bytes, then goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        ).encode()
        + body[:send]
    )
    return sock


def _wav_multipart(boundary: str, megabytes: int) -> bytes:
    """A multipart body whose file is a valid WAV header and `megabytes` MiB of silence."""
    data = bytes(megabytes << 20)
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
        + b"data"
        + struct.pack("<I", len(data))
    )
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="analyze"\r\n\r\nfalse\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + header
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_kill_9_during_uploads_keeps_the_accepted_job_and_leaves_no_upload_behind(tmp_path, tiny_model_repo, make_clip):
    """Before: the upload being copied when the server died stayed in `data_dir/uploads` for ever.

    At the kill: one job accepted (202), one upload whose body is still arriving (spooled by the
    multipart parser to the server's TMPDIR), and one whose body has arrived and is being copied
    into the data dir (the server is stopped with SIGSTOP while that file exists, then killed).
    After a restart on the same data dir the accepted job completes, neither upload became a job,
    and no file of either is left anywhere.
    """
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    env = {**_env(tmp_path, tiny_model_repo), "TMPDIR": str(server_tmp)}
    data_dir = Path(env["MUSICSEP_DATA_DIR"])
    log = tmp_path / "server.log"
    server = spawn_server(env, log)
    stalled = copying = None
    try:
        accepted = _submit(server.url, make_clip(seconds=3.0))
        pid = server.process.pid
        body = _wav_multipart("slowb0undary", 4)
        stalled = _stalled_upload(server.url, body, "slowb0undary", send=len(body) // 2)
        # The half-sent body is being spooled: past the parser's 1 MiB in memory, it is on disk.
        wait_until(lambda: _server_fds_under(pid, server_tmp), 30, "the stalled body to be spooled to disk")

        big = _wav_multipart("bigb0undary", 160)
        copying = _stalled_upload(server.url, big, "bigb0undary", send=len(big))  # all of it: then the copy
        uploads = data_dir / "uploads"
        wait_until(lambda: any(uploads.rglob("upload-*")), 60, "the complete upload to be copied into the data dir")
        os.kill(pid, signal.SIGSTOP)
        in_copy = sorted(uploads.rglob("upload-*"))
        assert in_copy, "the copy was over before the server was stopped; the kill must land during it"
        server.kill()
        assert in_copy[0].exists()  # what a crash during the copy leaves
    finally:
        for sock in (stalled, copying):
            if sock is not None:
                sock.close()
        server.terminate()

    restarted = spawn_server(env, log)
    try:
        status, events = stream_events(restarted.url + accepted["events_url"])
        assert status == 200 and events[-1][1] == "completed", events[-1]
        listed = httpx.get(f"{restarted.url}/api/v1/jobs", timeout=10).json()["jobs"]
        assert [job["id"] for job in listed] == [accepted["job_id"]]
        assert [path.name for path in (data_dir / "jobs").iterdir()] == [accepted["job_id"]]
        assert [path for path in (data_dir / "uploads").rglob("*") if path.is_file()] == []
        assert list(server_tmp.iterdir()) == []
    finally:
        restarted.terminate()


def test_a_starting_server_leaves_the_upload_folder_of_a_live_one_alone(tmp_path):
    """Several API processes share a data dir in scale-out: the sweep takes only unlocked folders."""
    from musicsep.api.upload_folder import UploadFolder

    live = UploadFolder(tmp_path)
    in_flight = live.path / "upload-in-flight"
    in_flight.write_bytes(b"RIFF")
    second = UploadFolder(tmp_path)
    try:
        assert in_flight.exists() and second.path != live.path
    finally:
        second.close()
        live.close()
    assert list((tmp_path / "uploads").iterdir()) == []
