"""An ONNX graph compiled by OpenVINO's CPU plugin behind the part of onnxruntime's session API the
engines use (`run`, `get_inputs`, `get_outputs`, `get_providers`), so a family runs either runtime
with the same code.

Exact by construction: OpenVINO's CPU plugin would run in bf16 on CPUs with AVX-512 bf16 or AMX
unless told otherwise, so the inference precision is pinned to f32 (the bf16 default gave 22 dB
against onnxruntime on the MDX-Net test graph, f32 gave 96 dB). Concurrent `run` calls (the MDX
engine's lanes) each take an infer request of their own from a pool: OpenVINO's compiled model is
thread-safe, a request is not. The compiled blob is cached in `cache_dir` (OpenVINO's CACHE_DIR),
so a second process skips the compile.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: OpenVINO element types as onnxruntime spells them (what the graph checks compare).
_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)", "i32": "tensor(int32)"}


@dataclass(frozen=True)
class IoInfo:
    """One graph input or output, shaped like onnxruntime's NodeArg (name, type, shape)."""

    name: str
    type: str
    shape: list


def _io(port) -> IoInfo:
    shape = [dim.get_length() if dim.is_static else "batch" for dim in port.get_partial_shape()]
    return IoInfo(port.get_any_name(), _TYPES.get(port.get_element_type().get_type_name(), "unknown"), shape)


class OpenVinoSession:
    """A compiled OpenVINO model answering onnxruntime's `run(None, {name: array})`."""

    def __init__(self, compiled, lanes: int) -> None:
        self._compiled = compiled
        self._inputs = [_io(port) for port in compiled.inputs]
        self._outputs = [_io(port) for port in compiled.outputs]
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.lanes = lanes

    def get_inputs(self) -> list[IoInfo]:
        return self._inputs

    def get_outputs(self) -> list[IoInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]

    def run(self, output_names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs for `feed`, copied out of the request's buffers (the request is reused)."""
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            result = request.infer({name: np.ascontiguousarray(value) for name, value in feed.items()})
            return [np.array(result[port], copy=True) for port in self._compiled.outputs]
        finally:
            self._idle.put(request)


def compile_onnx(path: Path, *, threads: int, lanes: int, cache_dir: Path | None) -> OpenVinoSession:
    """`path` read and compiled for the CPU in f32: `lanes` streams sharing `threads` threads
    (one stream per chunk in flight, as the engine's onnxruntime lanes; bench/mdx_speed.py)."""
    import openvino

    core = openvino.Core()
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "THROUGHPUT" if lanes > 1 else "LATENCY",
        "NUM_STREAMS": str(lanes),
        "INFERENCE_NUM_THREADS": str(threads),
    }
    # Compiled from the path, so that with a cache a later process reads the blob, not the graph.
    return OpenVinoSession(core.compile_model(str(path), "CPU", config), lanes)
