"""Which device and precision a model runs on: `auto` resolved, an absent device refused early.

An explicit device this machine lacks (`mps` on Linux, `cuda` without a GPU, `cuda:3` on a
one-GPU box) is a DeviceUnavailable that names the devices there are, raised before any weights
move, instead of an error deep inside `model.to` (a 500 before).
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from musicsep.model.errors import DeviceUnavailable


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine can run on, as `device` values: `cpu`, `cuda`, `cuda:1`, `mps`."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        if torch.cuda.device_count() > 1:
            devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def resolve_device(device: str = "auto"):
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is DeviceUnavailable
    (the error table's 422 `device_unavailable`), never a failure later inside `model.to`."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        wanted = None
    if wanted is None or not _present(wanted):
        raise DeviceUnavailable(
            f"device {device!r} was asked for but this machine has: {', '.join(available_devices())} (or 'auto')"
        )
    return wanted


def _present(device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return _mps_available()
    return device.type == "cpu"


def resolve_precision(precision: str, device) -> str:
    """`auto`: bf16 on CUDA and on CPUs with AMX or AVX-512 bf16, fp32 elsewhere. An explicit bf16
    or fp16 on a CPU without native arithmetic for it runs fp32 instead, with a warning: torch then
    emulates every operation (measured on an AVX2-only EPYC: a 256x256 matmul at 1.3 GFLOP/s in
    bf16 and fp16 against 62 in fp32, one HTDemucs segment 189 s against 4.9 s), so the request for
    speed would cost 40x. The precision a job ran at is reported with its result."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16"
        if device.type == "cpu" and cpu_runs_natively("bf16"):
            return "bf16"
        return "fp32"
    if device.type == "cpu" and precision in NATIVE_FLAGS and not cpu_runs_natively(precision):
        logger.warning(
            "musicsep precision: {} asked for, but this CPU has no native {} arithmetic "
            "(torch would emulate it about 40x slower): running fp32",
            precision,
            precision,
        )
        return "fp32"
    return precision


#: The /proc/cpuinfo flags under which oneDNN runs each reduced precision natively on a CPU.
NATIVE_FLAGS = {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "avx512_fp16")}


def cpu_runs_natively(precision: str, flags: str | None = None) -> bool:
    """Whether this CPU (or one with `flags`, /proc/cpuinfo's text) has native `precision` arithmetic."""
    if flags is None:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    present = set(flags.split())
    return any(flag in present for flag in NATIVE_FLAGS[precision])
