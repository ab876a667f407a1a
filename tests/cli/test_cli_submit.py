"""`musicsep submit` as a user runs it (a subprocess) against a real server on 127.0.0.1: failures are
one line and a documented exit status; Ctrl-C cancels the job it created, and asks before
cancelling one it did not (an idempotency key's replay of someone's earlier request)."""

from __future__ import annotations

import asyncio
import os
import pty
import selectors
import signal
import subprocess
import sys
import time

import pytest

from musicsep.clients import Cancelled, Client
from server_harness import free_port
from service.fake_pipeline import SteppedPipeline  # tests/service, on the path through pytest's pythonpath

EXIT_BAD_INPUT, EXIT_MODEL, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 3, 4, 6, 130


def _submit(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "musicsep.cli", "submit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _start_submit(*args, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "musicsep.cli", "submit", *map(str, args)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _stderr_until(process: subprocess.Popen, text: str, timeout_s: float = 30.0) -> str:
    """What the process wrote on stderr up to and including `text` (bounded; fails on timeout)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                raise AssertionError(f"no {text!r} on stderr within {timeout_s} s; got {seen.decode()!r}")
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"stderr closed before {text!r}; got {seen.decode()!r}")
            seen += chunk
    return seen.decode()


def _interrupt(process: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C: SIGINT, then the exit status and the rest of stderr."""
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    return process.returncode, rest.decode()


def test_submit_to_a_server_that_is_down_is_one_line_and_exit_6(make_clip):
    server = f"http://127.0.0.1:{free_port()}"
    out = _submit(make_clip(seconds=1.0), "--server", server)
    assert out.returncode == EXIT_UNREACHABLE
    [line] = out.stderr.splitlines()
    assert line.startswith("musicsep submit: cannot reach") and server in line


def test_submit_to_a_server_url_without_a_scheme_is_one_line_and_exit_2(make_clip):
    out = _submit(make_clip(seconds=1.0), "--server", "localhost:8000")
    assert out.returncode == 2
    [line] = out.stderr.splitlines()
    assert "localhost:8000" in line and "http://" in line


@pytest.mark.parametrize(
    "args,status",
    [
        (["--model", "no_such_model"], EXIT_MODEL),
        (["--stems", "vocals", "--two-stems", "vocals"], 2),
    ],
)
def test_submit_refusals_map_to_their_exit_codes(live_server, make_clip, args, status):
    server = live_server()
    out = _submit(make_clip(seconds=1.0), "--server", server.url, *args)
    assert out.returncode == status, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr


def test_submit_of_a_file_that_is_not_audio_exits_3(live_server, tmp_path):
    server = live_server()
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 20)
    out = _submit(text, "--server", server.url)
    assert out.returncode == EXIT_BAD_INPUT, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    missing = _submit(tmp_path / "missing.wav", "--server", server.url)
    assert missing.returncode == EXIT_BAD_INPUT and "no such file" in missing.stderr


@pytest.fixture
def stepped_server(live_server):
    fake = SteppedPipeline(timeout_s=30)
    try:
        yield fake, live_server(pipeline=fake)
    finally:
        fake.release()


def test_ctrl_c_cancels_the_job_this_command_created(stepped_server, make_clip, tmp_path):
    fake, server = stepped_server
    process = _start_submit(make_clip(seconds=1.0), "--server", server.url, "--out", tmp_path / "stems")
    job_id = _stderr_until(process, "\n").split()[1]
    fake.block_until_started(1)
    status, stderr = _interrupt(process)
    assert status == EXIT_INTERRUPTED
    assert f"cancelled job {job_id} on the server" in stderr and "Traceback" not in stderr
    assert fake.call_of(job_id).cancel.is_set()
    fake.release()
    with Client(server.url) as client:
        assert isinstance(client.wait(job_id), Cancelled)


def _someone_elses_job(server, fake, clip) -> str:
    with Client(server.url) as client:
        job_id = client.submit(clip, idempotency_key="their-key")["job_id"]
    fake.block_until_started(1)
    return job_id


def test_ctrl_c_leaves_a_replayed_job_running_when_stdin_is_not_a_terminal(stepped_server, make_clip):
    fake, server = stepped_server
    clip = make_clip(seconds=1.0)
    job_id = _someone_elses_job(server, fake, clip)
    process = _start_submit(clip, "--server", server.url, "--idempotency-key", "their-key")
    assert "not created by this command" in _stderr_until(process, f"job {job_id}")
    status, stderr = _interrupt(process)
    assert status == EXIT_INTERRUPTED
    assert f"left job {job_id} running" in stderr and "Traceback" not in stderr
    assert not fake.call_of(job_id).cancel.is_set()
    with Client(server.url) as client:
        assert client.job(job_id).status == "running"


def test_ctrl_c_on_a_replayed_job_asks_at_a_terminal_and_cancels_on_yes(stepped_server, make_clip):
    fake, server = stepped_server
    clip = make_clip(seconds=1.0)
    job_id = _someone_elses_job(server, fake, clip)
    terminal, other_end = pty.openpty()
    try:
        process = _start_submit(clip, "--server", server.url, "--idempotency-key", "their-key", stdin=other_end)
        _stderr_until(process, f"job {job_id}")
        process.send_signal(signal.SIGINT)
        _stderr_until(process, "cancel it anyway? [y/N]")
        os.write(terminal, b"y\n")
        _, rest = process.communicate(timeout=30)
    finally:
        os.close(terminal)
        os.close(other_end)
    assert process.returncode == EXIT_INTERRUPTED
    assert f"cancelled job {job_id} on the server" in rest.decode()
    assert fake.call_of(job_id).cancel.is_set()


def test_ctrl_c_racing_the_jobs_completion_leaves_its_stems_on_the_server(stepped_server, make_clip, capsys):
    """The interrupt arrives after the server completed the job but before this command saw it:
    the cancel it sends is refused (409 job_finished) and deletes nothing."""
    from musicsep.cli.submit import _interrupted, _Job

    fake, server = stepped_server
    with Client(server.url) as client:
        job_id = client.submit(make_clip(seconds=1.0))["job_id"]
        fake.block_until_started(1)
        asyncio.run(fake.finish(job_id))
        completed = client.wait(job_id)
        assert _interrupted(client, _Job(id=job_id, ours=True)) == EXIT_INTERRUPTED
        assert f"job {job_id} has ended, its stems stay on the server" in capsys.readouterr().err
        assert client.job(job_id).status == "completed"
        saved = client.download_all(completed, server.settings.data_dir.parent / "saved")
    assert len(saved) == 4 and all(path.stat().st_size > 0 for path in saved.values())
