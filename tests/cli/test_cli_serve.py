"""`musicsep serve` and `musicsep submit` as a user runs them."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys

import server_harness as harness
from http_target import http_target

EXIT_PORT_IN_USE = 5


def _tiny_server_env(tmp_path, tiny_model_repo) -> dict[str, str]:
    return {
        "MUSICSEP_DATA_DIR": str(tmp_path / "data"),
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_DEFAULT_MODEL": "tiny_htdemucs",
        "MUSICSEP_OFFLINE": "1",
        "MUSICSEP_DEVICE": "cpu",
    }


def _first_stdout_line(process: subprocess.Popen, timeout_s: float) -> str:
    """The first line the process prints, or "" if it prints none within `timeout_s`."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=timeout_s):
            return ""
    return process.stdout.readline()


def test_serve_help_is_light():
    code = (
        "import sys; from musicsep.cli import main; "
        "sys.argv=['musicsep','serve','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=[m for m in sys.modules if m.split('.')[0] in ('torch','fastapi','uvicorn','demucs')]\n"
        "sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--max-concurrent" in result.stdout and "--preload" in result.stdout
    assert f"{EXIT_PORT_IN_USE} the port is in use" in " ".join(result.stdout.split())


def test_serve_refuses_unsafe_settings():
    env = {**os.environ, "MUSICSEP_CORS_ORIGINS": '["*"]', "MUSICSEP_CORS_ALLOW_CREDENTIALS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "musicsep.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "credentials" in result.stderr


def test_a_busy_port_is_a_one_line_error_with_its_own_exit_code(tmp_path, tiny_model_repo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **_tiny_server_env(tmp_path, tiny_model_repo)}
        result = subprocess.run(
            [sys.executable, "-m", "musicsep.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == EXIT_PORT_IN_USE, result.stderr
    assert result.stderr.splitlines() == [
        f"musicsep serve: port {port} on 127.0.0.1 is in use by another program: stop it, or choose another with --port"
    ]
    assert "musicsep serving on" not in result.stdout


def test_the_urls_are_printed_once_the_server_answers_on_them(tmp_path, tiny_model_repo):
    port = harness.free_port()
    env = {
        **os.environ,
        **_tiny_server_env(tmp_path, tiny_model_repo),
        "MUSICSEP_PRELOAD": '["tiny_htdemucs"]',  # a longer startup: the URLs must still wait for its end
        "OMP_NUM_THREADS": "1",
    }
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "musicsep.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        line = _first_stdout_line(process, timeout_s=harness.STARTUP_TIMEOUT_S)
        url = f"http://127.0.0.1:{port}"
        assert line.strip() == f"musicsep serving on {url} (web page: {url}/, API docs: {url}/docs)", (
            line + (tmp_path / "server.log").read_text()
        )
        # Asked at once, without retries: the printed URLs already answer.
        assert harness.httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        assert harness.httpx.get(f"{url}/docs", timeout=10).status_code == 200
    finally:
        harness.stop_process(process)


def test_serve_then_submit_downloads_stems(tmp_path, tiny_model_repo, make_clip):
    server = harness.spawn_server(_tiny_server_env(tmp_path, tiny_model_repo), tmp_path / "server.log")
    try:
        assert f"musicsep serving on {server.url}" in (tmp_path / "server.log").read_text()
        out = tmp_path / "out"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "musicsep.cli",
                "submit",
                str(make_clip(seconds=2.0)),
                "--server",
                server.url,
                "--two-stems",
                "vocals",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(p.name.rsplit("-", 1)[1].strip() for p in out.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    finally:
        server.terminate()


def test_submit_takes_a_url_that_the_server_downloads(live_server, make_clip):
    server = live_server(allow_loopback_urls=True)  # test-only: the song is served on 127.0.0.1
    with http_target() as target:
        target.audio = make_clip(seconds=1.0).read_bytes()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "musicsep.cli",
                "submit",
                f"{target.url}/audio",
                "--server",
                server.url,
                "--stems",
                "vocals",
                "--no-download",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr
    name, link = result.stdout.strip().split("\t")
    assert name == "vocals" and link.startswith(f"{server.url}/api/v1/jobs/")
    assert harness.httpx.get(link).status_code == 200


def test_json_logs_carry_the_request_id_on_request_and_job_lines(tmp_path, tiny_model_repo, make_clip):
    env = {**_tiny_server_env(tmp_path, tiny_model_repo), "MUSICSEP_LOG_JSON": "1"}
    log = tmp_path / "server.log"
    server = harness.spawn_server(env, log)
    try:
        with make_clip(seconds=1.0).open("rb") as handle:
            accepted = harness.httpx.post(
                f"{server.url}/api/v1/jobs",
                files={"file": ("a.wav", handle)},
                data={"analyze": "false"},
                headers={"X-Request-Id": "trace-log-1"},
            ).json()
        status, events = harness.stream_events(server.url + accepted["events_url"])
        assert events[-1][1] == "completed"
    finally:
        server.terminate()
    records = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line)["record"])
    assert any("Application startup complete" in r["message"] for r in records)  # uvicorn routed in
    mine = [r for r in records if r["extra"].get("request_id") == "trace-log-1"]
    assert any("POST /api/v1/jobs" in r["message"] for r in mine)
    assert any(r["extra"].get("job_id") == accepted["job_id"] and "started" in r["message"] for r in mine)


def test_sigterm_keeps_the_running_job_for_the_next_start(tmp_path, tiny_model_repo, make_clip):
    """A graceful stop is not a crash: the job runs again after the restart, attempt not counted."""
    env = _tiny_server_env(tmp_path, tiny_model_repo)
    log = tmp_path / "server.log"
    server = harness.spawn_server(env, log)
    try:
        with make_clip(seconds=40.0).open("rb") as handle:
            accepted = harness.httpx.post(
                f"{server.url}/api/v1/jobs", files={"file": ("a.wav", handle)}, data={"analyze": "false"}
            ).json()
        status, events = harness.stream_events(server.url + accepted["events_url"], stop_after=3)
        assert "started" in [kind for _, kind, _ in events]
    finally:
        server.terminate()
    # uvicorn re-raises SIGTERM after its shutdown, so the exit status is -15; the log shows it was clean.
    assert "job put back in the queue" in log.read_text()
    assert "Application shutdown complete" in log.read_text()
    restarted = harness.spawn_server(env, log)
    try:
        status, events = harness.stream_events(restarted.url + accepted["events_url"])
        assert events[-1][1] == "completed"
        assert harness.httpx.get(restarted.url + accepted["status_url"]).json()["attempts"] == 1
    finally:
        restarted.terminate()
