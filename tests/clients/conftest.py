"""Server fixtures (`live_server`, helpers) shared from tests/api/server_harness.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "musicsep_tests_server_harness"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).parents[1] / "api" / "server_harness.py")
    assert _spec is not None and _spec.loader is not None
    sys.modules[_NAME] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_NAME])

harness = sys.modules[_NAME]
live_server = harness.live_server
