"""The examples, run as a user runs them, against a live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("script", ["client_requests.py", "client_aiohttp.py"])
def test_example_separates_and_saves_stems(script, live_server, make_clip, tmp_path):
    server = live_server()
    out = tmp_path / "stems"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / script),
            str(make_clip(seconds=2.0)),
            "--server",
            server.url,
            "--stems",
            "vocals,drums",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["drums.wav", "vocals.wav"]
    assert all(p.stat().st_size > 1000 for p in out.iterdir())
