"""Which runtime runs an MDX-Net graph on the CPU: onnxruntime, OpenVINO, or the measured faster one.

`runtime` is Settings.runtime: `onnxruntime` and `openvino` force one (`torch` has no ONNX
runtime, so it means onnxruntime here); `auto` reads the choice saved for this file, runtime
versions and CPU, or calibrates once (model/runtime/choice.py) on one chunk of a fixed
pseudo-random spectrogram and keeps the fastest runtime that agrees with onnxruntime. Without the
openvino wheel, and on CUDA, it is onnxruntime, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from musicsep.model.mdx.params import MdxParams
from musicsep.model.mdx.session import INPUT_NAME, cpu_lanes, cpu_threads, open_session, providers_for
from musicsep.model.runtime.choice import (
    Choice,
    cached_choice,
    calibrate,
    default_cache_dir,
    model_key,
    runtime_available,
)

ONNX_RUNTIMES = ("onnxruntime", "openvino")


@dataclass
class OpenedGraph:
    session: object
    fixed_batch: int | None
    lanes: int
    runtime: str
    choice: Choice | None = None


def open_mdx_graph(
    path: Path,
    params: MdxParams,
    *,
    name: str,
    device: str,
    runtime: str = "onnxruntime",
    cache_dir: Path | None = None,
) -> OpenedGraph:
    """The graph opened in the runtime `runtime` resolves to on `device`."""
    on_cpu = providers_for(device) == ["CPUExecutionProvider"]
    lanes = cpu_lanes(cpu_threads()) if on_cpu else 1
    threads = cpu_threads() // lanes
    if not on_cpu or runtime == "torch":
        runtime = "onnxruntime"
    if runtime in ("openvino", "auto") and not runtime_available("openvino"):
        if runtime == "openvino":
            logger.warning("musicsep runtime: openvino is not installed; {} runs in onnxruntime", name)
        runtime = "onnxruntime"
    folder = cache_dir or default_cache_dir()
    if runtime == "onnxruntime":
        session, batch = open_session(path, params, name=name, device=device, threads=threads)
        return OpenedGraph(session, batch, lanes, "onnxruntime")
    key = model_key(path, list(ONNX_RUNTIMES), f"mdx lanes={lanes}")

    def openvino():
        return open_session(
            path,
            params,
            name=name,
            device=device,
            threads=threads * lanes,
            runtime="openvino",
            lanes=lanes,
            cache_dir=folder / "openvino" / key,
        )

    if runtime == "openvino":
        session, batch = openvino()
        return OpenedGraph(session, batch, lanes, "openvino")
    choice = cached_choice(folder, key, ONNX_RUNTIMES)
    if choice is not None:
        if choice.runtime == "openvino":
            session, batch = openvino()
        else:
            session, batch = open_session(path, params, name=name, device=device, threads=threads)
        return OpenedGraph(session, batch, lanes, choice.runtime, choice)
    sessions = {
        "onnxruntime": open_session(path, params, name=name, device=device, threads=threads),
        "openvino": openvino(),
    }
    x = calibration_input(params, sessions["onnxruntime"][1] or 1)
    choice = calibrate(
        {runtime: _forward(session, x) for runtime, (session, _) in sessions.items()},
        reference="onnxruntime",
        key=key,
        folder=folder,
    )
    session, batch = sessions[choice.runtime]
    return OpenedGraph(session, batch, lanes, choice.runtime, choice)


def calibration_input(params: MdxParams, batch: int) -> np.ndarray:
    """A fixed spectrogram-shaped input (the same in every process: the measurement is repeatable)."""
    rng = np.random.default_rng(17)
    return (0.3 * rng.standard_normal((batch, 4, params.dim_f, params.dim_t))).astype(np.float32)


def _forward(session, x: np.ndarray):
    return lambda: session.run(None, {INPUT_NAME: x})[0]
