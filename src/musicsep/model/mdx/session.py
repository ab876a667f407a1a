"""Opening an MDX-Net `.onnx` file in onnxruntime, on the device asked for, checked against its parameters.

A file that is not a readable ONNX model, or whose graph does not take and give
`[batch, 4, dim_f, dim_t]` float32 through an input named `input`, is a `ModelUnavailable` here,
at load, not a shape error inside the first chunk of a job.
"""

from __future__ import annotations

import os
from pathlib import Path

from musicsep.model.errors import DeviceUnavailable, ModelUnavailable
from musicsep.model.mdx.params import MdxParams

INPUT_NAME = "input"


def cpu_threads() -> int:
    """The CPUs this process may use (a container's cpuset included); onnxruntime's default
    counts the host's physical cores instead."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_lanes(cpus: int) -> int:
    """Chunks run at once on the CPU, each in its own `session.run` with `cpus // lanes` intra-op
    threads: two where there are two CPUs or more. One run over all CPUs meets a barrier at every
    operator, and on a shared machine the run waits at each for whichever thread was descheduled;
    two independent runs keep going. Measured with bench/mdx_speed.py (Xeon with AVX-512, 2 cores,
    load 2-6): two one-thread runs 3.5-5.9 s per chunk against 4.2-8.5 s for one two-thread run;
    the same CPU seconds per chunk (4.2-4.5). The reason does not depend on the vector
    instructions, so AVX2-only CPUs get the same default. More lanes would only multiply the
    activations held (a full-size chunk's run holds about 1 GB)."""
    return 2 if cpus >= 2 else 1


def providers_for(device: str) -> list:
    """onnxruntime execution providers for a musicsep device (`cpu`, `cuda`, `cuda:N`, `auto`)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceUnavailable(f"device {device!r} cannot run MDX-Net (ONNX) models; use 'cpu', 'cuda' or 'auto'")
    if not has_cuda:
        raise DeviceUnavailable(
            f"device {device!r} was asked for, but onnxruntime here has no CUDA execution "
            "provider (it needs the onnxruntime-gpu package and a GPU); use 'cpu'"
        )
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


def open_session(
    path: Path,
    params: MdxParams,
    *,
    name: str,
    device: str,
    threads: int | None = None,
    runtime: str = "onnxruntime",
    lanes: int = 1,
    cache_dir: Path | None = None,
):
    """A session for the file, its graph checked against `params`; returns (session, the batch
    size the graph fixes, or None when its batch is symbolic). `runtime` `openvino` compiles it
    with OpenVINO (CPU only: `lanes` streams over `threads` threads in all, its blob cached in
    `cache_dir`); otherwise an onnxruntime InferenceSession with `threads` intra-op threads."""
    if runtime == "openvino":
        from musicsep.model.runtime.openvino_session import compile_onnx

        try:
            session = compile_onnx(path, threads=threads or cpu_threads(), lanes=lanes, cache_dir=cache_dir)
        except Exception as exc:  # OpenVINO raises RuntimeError/GeneralFailure for unreadable graphs
            raise ModelUnavailable(
                f"model '{name}' is not a readable ONNX model (the file is truncated, "
                f"corrupt or not ONNX: {type(exc).__name__})"
            ) from None
        return session, _check_graph(session, params, name)
    import onnxruntime

    providers = providers_for(device)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # onnxruntime's warnings are for model authors, not users
    # Spinning workers burn a shared CPU between the short gaps of a pass (other jobs' time);
    # blocking was not slower in bench/mdx_speed.py.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidProtobuf/RuntimeException
        # Its message names the server path: say what happened, not where.
        raise ModelUnavailable(
            f"model '{name}' is not a readable ONNX model (the file is truncated, "
            f"corrupt or not ONNX: {type(exc).__name__})"
        ) from None
    return session, _check_graph(session, params, name)


def _check_graph(session, params: MdxParams, name: str) -> int | None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    wanted = f"float32 [batch, 4, {params.dim_f}, {params.dim_t}]"
    if [item.name for item in inputs] != [INPUT_NAME] or len(outputs) != 1:
        raise ModelUnavailable(
            f"model '{name}' is not an MDX-Net graph: it needs one input named '{INPUT_NAME}' and one "
            f"output, and has inputs {[item.name for item in inputs]} and {len(outputs)} output(s)"
        )
    for role, item in (("input", inputs[0]), ("output", outputs[0])):
        shape = list(item.shape or [])
        fixed = [None if not isinstance(dim, int) or dim < 0 else dim for dim in shape]
        fits = (
            item.type == "tensor(float)"
            and len(fixed) == 4
            and all(
                got is None or got == want for got, want in zip(fixed[1:], (4, params.dim_f, params.dim_t), strict=True)
            )
        )
        if not fits:
            raise ModelUnavailable(
                f"model '{name}' does not match its MDX-Net parameters: its {role} is {item.type} {shape}, "
                f"the parameters (dim_f {params.dim_f}, dim_t {params.dim_t}) need {wanted}"
            )
    batch = inputs[0].shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None
