"""The examples, run as a user runs them, against a live server (and one that is down)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server_harness import free_port

EXAMPLES = Path(__file__).parents[2] / "examples"
SCRIPTS = ["client_requests.py", "client_aiohttp.py", "client_library.py"]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("script", "extra", "names"),
    [
        ("client_requests.py", [], ["drums.wav", "vocals.wav"]),
        ("client_aiohttp.py", [], ["drums.wav", "vocals.wav"]),
        ("client_library.py", ["--title", "Demo"], ["Demo - drums.wav", "Demo - vocals.wav"]),
    ],
)
def test_example_separates_and_saves_stems(script, extra, names, live_server, make_clip, tmp_path):
    server = live_server()
    out = tmp_path / "new" / "stems"
    clip = str(make_clip(seconds=2.0))
    result = _run(script, clip, "--server", server.url, "--stems", "vocals,drums", "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == names
    assert all(p.stat().st_size > 1000 for p in out.iterdir())


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_against_a_server_that_is_down_says_so_in_one_line(script, make_clip, tmp_path):
    server = f"http://127.0.0.1:{free_port()}"
    result = _run(script, str(make_clip(seconds=0.5)), "--server", server, "--out", str(tmp_path / "stems"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cannot reach") and server in line
