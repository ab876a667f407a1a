"""Stream churn leaks nothing, quick version: 500 connect/disconnect cycles on an
event stream of a real server subprocess leave its file descriptors and asyncio tasks at baseline
±5 and its RSS within 20 MB. The full 10,000 cycles: `python bench/stream_churn.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "stream_churn.py"


def test_500_stream_connect_disconnect_cycles_leak_no_fd_task_or_memory():
    run = subprocess.run(
        [sys.executable, str(BENCH), "--cycles", "500", "--time-cap-s", "120", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["cycles"] == 500 and result["job_status"] == "running"
    assert abs(result["delta"]["fds"]) <= 5, result
    assert abs(result["delta"]["tasks"]) <= 5, result
    assert result["delta"]["rss_mb"] < 20, result
    assert result["after"]["open_streams"] == 0
