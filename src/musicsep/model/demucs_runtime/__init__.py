"""Demucs's HTDemucs networks in a CPU inference runtime (OpenVINO), chosen per Settings.runtime (issue 17).

`apply_runtime` switches a loaded DemucsSeparator's HTDemucs members to OpenVINO when the runtime
resolves to it; importing this package imports OpenVINO only when a network is converted or compiled.
"""

from __future__ import annotations

from musicsep.model.demucs_runtime.runtimes import apply_runtime

__all__ = ["apply_runtime"]
