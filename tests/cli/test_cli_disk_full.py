"""`musicsep separate` on a disk that fills: exit status 5 and one line that says so, no traceback.

The output folder is a real 1 MiB tmpfs the test mounts (tests/small_disk.py; skipped where it
may not mount). The decoded track is spilled there first (3.5 MB for 10 s), so the disk fills
during the decode, before any stem is written.
"""

from __future__ import annotations

import os
import subprocess
import sys

from small_disk import small_disk  # noqa: F401 (a fixture)


def test_a_disk_that_fills_while_the_track_is_spilled_exits_5_without_a_traceback(
    tiny_model_repo, make_clip, small_disk
):
    """Before: exit 1 with `OSError: [Errno 28] No space left on device` and its traceback."""
    disk = small_disk("1m")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "MUSICSEP_FALLBACK": "none",
    }
    clip = make_clip(seconds=10.0)
    out = subprocess.run(
        [sys.executable, "-m", "musicsep.cli", "separate", str(clip), "-m", "tiny_hdemucs", "-o", str(disk)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr
    assert f"musicsep: {clip.name}: " in out.stderr and "disk space" in out.stderr
    assert [path for path in disk.rglob("*") if path.is_file()] == []
