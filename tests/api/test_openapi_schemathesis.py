"""Runs `openapi_schemathesis_isolated.py` inside `unshare -n` with only `lo` up.

schemathesis fills `audio_url` (and webhook_url) with whatever the schema allows, public host
names included; the server must never try them from the machine's own namespace (this machine
has IPv4 and IPv6 default routes). In a namespace with only loopback, a fetch fails at name
resolution or connect, and nothing leaves the machine whatever the SSRF check does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INNER = Path(__file__).with_name("openapi_schemathesis_isolated.py")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_schemathesis_finds_no_failure_in_a_loopback_only_namespace():
    if not _can_unshare():
        pytest.skip("needs `unshare -n` (root) and iproute2 to isolate the server from the network")
    command = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider --timeout 600 {INNER}"
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "MUSICSEP_TEST_NETNS": "loopback-only"},
        cwd=INNER.parents[2],
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-20000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
