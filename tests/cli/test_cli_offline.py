"""`musicsep separate` on a machine without a network: inside `unshare -n` (root), where only
loopback exists, so no test here can make a real connection.

Both tests leave `MUSICSEP_OFFLINE` and `HF_HUB_OFFLINE` unset and give empty weight caches, so
the CLI really tries to download htdemucs before it falls back to `dsp`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HUB_STANDIN = Path(__file__).with_name("hub_standin.py")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare -n` (root) and iproute2 for a loopback-only namespace"
)


def _without_network(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MUSICSEP_OFFLINE", "HF_HUB_OFFLINE", "MUSICSEP_MODEL_REPO", "HF_ENDPOINT")
    }
    env |= {
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "MUSICSEP_FALLBACK": "htdemucs,dsp",
    }
    inner = f"ip link set lo up && exec {shlex.join(command)}"
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", inner], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )


def test_without_a_network_separate_falls_back_at_once_and_names_musicsep_offline(make_clip, tmp_path):
    clip = make_clip(seconds=1.0)
    out = _without_network(
        [sys.executable, "-m", "musicsep.cli", "separate", str(clip), "-m", "htdemucs", "-o", "sep", "--json"], tmp_path
    )
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["model"] == "dsp" and line["requested_model"] == "htdemucs"
    assert line["model_load_s"] < 4.0  # one failed check, not half a minute of retries
    assert "MUSICSEP_OFFLINE=1" in out.stderr and "no network" in out.stderr
    assert "Retrying" not in out.stderr and "Traceback" not in out.stderr
    assert Path(line["stems"]["vocals"]) == tmp_path / "sep" / "dsp" / clip.stem / "vocals.wav"


def test_separate_json_keeps_download_messages_off_stdout(make_clip, tmp_path):
    clip = make_clip(seconds=1.0)
    command = [sys.executable, str(HUB_STANDIN), "separate", str(clip), "-m", "htdemucs", "-o", "sep", "--json"]
    out = _without_network(command, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Downloading" in out.stderr  # the legacy repository was tried, and said so on stderr
    [line] = out.stdout.splitlines()
    assert json.loads(line)["model"] == "dsp"
