"""CPU inference runtimes (onnxruntime, OpenVINO, torch) and the choice between them (issue 17).

`choice.calibrate` measures once per (model file, runtime versions, CPU) and remembers the result on
disk; `openvino_session.compile_onnx` runs an ONNX graph in OpenVINO behind onnxruntime's session
API. Importing this package imports neither runtime.
"""

from __future__ import annotations

from musicsep.model.runtime.choice import (
    RUNTIMES,
    Choice,
    cache_key,
    cached_choice,
    calibrate,
    cpu_fingerprint,
    default_cache_dir,
    file_digest,
    model_key,
    runtime_available,
    runtime_versions,
)

__all__ = [
    "RUNTIMES",
    "Choice",
    "cache_key",
    "cached_choice",
    "calibrate",
    "cpu_fingerprint",
    "default_cache_dir",
    "file_digest",
    "model_key",
    "runtime_available",
    "runtime_versions",
]
