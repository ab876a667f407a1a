"""examples/live_stem_to_wav.py, run as a user runs it against a live server: the WAV it writes
while the job runs equals the finished stem (float32 with soundfile; 16-bit without it)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

import server_harness as harness

EXAMPLE = Path(__file__).parents[2] / "examples" / "live_stem_to_wav.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=180, env=env)


def test_the_live_example_writes_the_stem_as_the_server_finishes_it(live_server, make_clip, tmp_path):
    server = live_server()
    out = tmp_path / "vocals.wav"
    result = _run(str(make_clip(seconds=3.5)), "--stem", "vocals", "--out", str(out), "--server", server.url)
    assert result.returncode == 0, result.stderr
    assert "s written" in result.stdout
    job_id = result.stdout.split()[1].rstrip(":")
    # The live stream ends once every frame is final, which can be before the job has encoded its files.
    status, events = harness.stream_events(f"{server.url}/api/v1/jobs/{job_id}/events")
    assert status == 200 and events[-1][1] == "completed"
    view = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10).json()
    final = sf.read(
        io.BytesIO(httpx.get(server.url + view["stems"]["vocals"]["url"], timeout=30).content),
        dtype="float32",
        always_2d=True,
    )[0]
    written, _ = sf.read(str(out), dtype="float32", always_2d=True)
    assert sf.info(str(out)).subtype == "FLOAT"
    assert np.array_equal(written, final)


def test_the_live_example_ends_with_the_reason_for_an_unknown_stem(live_server, make_clip, tmp_path):
    server = live_server()
    result = _run(
        str(make_clip(seconds=1.0)), "--stem", "kazoo", "--out", str(tmp_path / "x.wav"), "--server", server.url
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "stem_not_found" in result.stderr
