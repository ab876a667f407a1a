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

import contextlib
import os
import queue
import shutil
import threading
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


class RequestPool:
    """A compiled model and its idle infer requests. OpenVINO's compiled model is thread-safe, an
    infer request is not: each concurrent call (an engine's lanes or jobs) takes a request of its
    own, made on first need and reused after.

    A new request's first inference runs alone (`_first_use`): two fresh requests of a
    multi-stream model inferring at once deadlocked in OpenVINO 2026.4.1 (both threads blocked
    writing their first input, the process idle for good). HTDemucs compiled with two streams,
    two chunks in flight, a 3-minute track: 3 of 4 runs hung without this, none of 4 with it
    (docs/performance.md, "Streams, threads and pinning"). Later inferences run side by side."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._first_use = threading.Lock()

    def infer(self, inputs) -> list[np.ndarray]:
        """Every output for `inputs` (a list, or a dict by name or index), copied out of the
        request's buffers, which the next call reuses."""
        try:
            request, guard = self._idle.get_nowait(), contextlib.nullcontext()
        except queue.Empty:
            request, guard = None, self._first_use
        with guard:
            if request is None:
                request = self.compiled.create_infer_request()
            try:
                return self._run(request, inputs)
            finally:
                self._idle.put(request)

    def _run(self, request, inputs) -> list[np.ndarray]:
        if isinstance(inputs, dict):
            result = request.infer({key: np.ascontiguousarray(value) for key, value in inputs.items()})
        else:
            result = request.infer([np.ascontiguousarray(value) for value in inputs])
        return [np.array(result[port], copy=True) for port in self.compiled.outputs]


def save_ir(converted, path: Path) -> None:
    """Save a converted model as IR at `path` (`.xml` beside its `.bin`) with f32 weights (not
    OpenVINO's default fp16 compression). Written into a folder beside, then renamed into place:
    a process converting the same network at the same time (two workers' first jobs) never reads
    a half-written IR; when another process's IR got there first, it is the same network."""
    import openvino

    partial = path.parent.with_name(f"{path.parent.name}.{os.getpid()}.part")
    partial.mkdir(parents=True, exist_ok=True)
    openvino.save_model(converted, str(partial / path.name), compress_to_fp16=False)
    try:
        os.rename(partial, path.parent)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)


class OpenVinoSession:
    """A compiled OpenVINO model answering onnxruntime's `run(None, {name: array})`."""

    def __init__(self, compiled, lanes: int) -> None:
        self._pool = RequestPool(compiled)
        self._inputs = [_io(port) for port in compiled.inputs]
        self._outputs = [_io(port) for port in compiled.outputs]
        self.lanes = lanes

    def get_inputs(self) -> list[IoInfo]:
        return self._inputs

    def get_outputs(self) -> list[IoInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]

    def run(self, output_names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs for `feed`, copied out of the request's buffers (the request is reused)."""
        return self._pool.infer(feed)


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
