"""Model names in the CLI: `musicsep separate -m` takes a model name, never a path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from model_name_fixtures import model_places  # noqa: F401  (fixture)


@pytest.mark.parametrize("name", ["../outside/evil", "../outside/evil_bag"])
def test_separate_refuses_a_model_name_that_is_a_path(model_places, make_clip, tmp_path, name):
    """Was: `-m ../outside/evil` loaded `outside/evil.safetensors`, separated with it (exit 0) and
    wrote the stems under `OUT/../outside/evil/`."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MUSICSEP_MODEL_REPO": str(model_places.repo),
        "MUSICSEP_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "MUSICSEP_FALLBACK": "tiny_one,dsp",
    }
    out_dir = tmp_path / "out" / "sep"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicsep.cli",
            "separate",
            str(make_clip(seconds=1.0)),
            "-m",
            name,
            "-o",
            str(out_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr
    assert "letters, digits" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))
