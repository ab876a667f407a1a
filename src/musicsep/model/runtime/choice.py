"""Which CPU inference runtime runs a model: forced by the caller, or measured once and remembered.

`auto` is a short calibration on the first load of a model on a machine: each runtime that can
run it times one chunk-sized forward pass, the fastest that agrees with the reference runtime
(SDR >= `AGREEMENT_DB`) wins, and the result is written to a JSON file named by a key of the
model file's sha256, the runtimes' versions and the CPU (model name, flags, usable cores). A
later load with the same key (another process, a server restart) reads the choice back and
measures nothing; any change to the file, a runtime upgrade or another CPU is another key, so a
stale choice is never reused. Decided by measurement rather than CPU flags because the ranking
was not what the flags predicted (docs/performance.md, "CPU runtimes").
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from loguru import logger

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
#: The distribution that provides each runtime (its version is part of the key).
PACKAGES = {"torch": "torch", "openvino": "openvino", "onnxruntime": "onnxruntime"}
#: A runtime whose output differs more than this from the reference's is never chosen.
AGREEMENT_DB = 60.0
#: A runtime must beat the reference by this factor to replace it: within the noise of one
#: timed pass, keep the runtime the equivalence tests pin.
MARGIN = 0.95

_digests: dict[tuple[str, int, int], str] = {}


def runtime_available(runtime: str) -> bool:
    """Whether the runtime's package imports here (a missing wheel skips that runtime)."""
    try:
        importlib.metadata.version(PACKAGES[runtime])
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def runtime_versions(runtimes: list[str]) -> dict[str, str]:
    return {name: importlib.metadata.version(PACKAGES[name]) for name in runtimes if runtime_available(name)}


def cpu_fingerprint() -> dict[str, object]:
    """The CPU as the key sees it: model name, instruction-set flags and the cores this process may use."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = " ".join(sorted(value.split()))
    except OSError:  # not Linux: the model name alone
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return {"model": model, "flags": hashlib.sha256(flags.encode()).hexdigest()[:16], "cpus": cpus}


def file_digest(path: Path) -> str:
    """sha256 of the file, remembered per (path, size, mtime) so a process hashes a model once."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _digests:
        with open(path, "rb") as handle:
            _digests[memo] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _digests[memo]


def cache_key(digest: str, versions: Mapping[str, str], cpu: Mapping[str, object], extra: str = "") -> str:
    """The key of a choice: anything that can change which runtime is fastest is in it."""
    text = json.dumps({"file": digest, "versions": dict(versions), "cpu": dict(cpu), "extra": extra}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def model_key(model_file: Path, runtimes: list[str], extra: str = "") -> str:
    """The cache key of one model file's choice between `runtimes` on this CPU."""
    return cache_key(file_digest(model_file), runtime_versions(runtimes), cpu_fingerprint(), extra)


def default_cache_dir() -> Path:
    """$MUSICSEP_RUNTIME_CACHE_DIR (the server's setting, so a library caller without settings reads
    the same cache), else ~/.cache/musicsep/runtime (or under $XDG_CACHE_HOME): the choices and
    OpenVINO's compiled blobs."""
    if os.environ.get("MUSICSEP_RUNTIME_CACHE_DIR"):
        return Path(os.environ["MUSICSEP_RUNTIME_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "musicsep" / "runtime"


@dataclass
class Choice:
    """The runtime chosen for a model, and how: `cached` when read back, else what was measured."""

    runtime: str
    key: str
    cached: bool
    seconds: dict[str, float] = field(default_factory=dict)
    agreement_db: dict[str, float] = field(default_factory=dict)
    calibration_s: float = 0.0

    def describe(self) -> str:
        if self.cached:
            return f"runtime {self.runtime} (cache hit {self.key})"
        times = ", ".join(f"{name} {seconds:.2f} CPU s" for name, seconds in self.seconds.items())
        return f"runtime {self.runtime} (cache miss {self.key}: calibrated in {self.calibration_s:.1f} s; {times})"


#: Timed passes per candidate, alternated between candidates, each candidate's least kept: one
#: pass each chose torch for the released HTDemucs in fp32 on a Zen 4 (torch 4.93, OpenVINO 4.79
#: CPU s) where medians of three alternated passes say 5.51 against 4.18 (docs/performance.md).
CALIBRATION_ROUNDS = 2


def cpu_seconds(run: Callable[[], np.ndarray]) -> float:
    """The process's CPU seconds for one `run()`. CPU seconds rather than wall time, so other
    work on a shared machine does not decide."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def agreement_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR of `estimate` against `reference` in dB (inf when equal)."""
    error = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if error == 0.0:
        return float("inf")
    return 10 * np.log10(max(signal, 1e-30) / error)


def cached_choice(folder: Path, key: str, allowed: tuple[str, ...]) -> Choice | None:
    """The choice saved for `key` in `folder`, if it names one of `allowed` (logged as a cache hit)."""
    try:
        saved = json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None  # no choice yet, or an unreadable one: measure again
    if not isinstance(saved, dict) or saved.get("runtime") not in allowed:
        return None
    choice = Choice(saved["runtime"], key, True, saved.get("seconds", {}), saved.get("agreement_db", {}))
    logger.info("musicsep runtime: {}", choice.describe())
    return choice


def calibrate(
    candidates: Mapping[str, Callable[[], np.ndarray]],
    *,
    reference: str,
    key: str,
    folder: Path,
    floor_db: float | None = None,
) -> Choice:
    """Measure `candidates` (name -> one forward pass on the calibration input; CALIBRATION_ROUNDS
    timed passes each after a warm-up, the least CPU time kept), keep the fastest that agrees with
    `reference` to `floor_db` (AGREEMENT_DB unless given: a reduced-precision reference is held to
    its own floor) and is clearly faster, and write the choice to `folder/<key>.json` (logged as a
    cache miss)."""
    floor = AGREEMENT_DB if floor_db is None else floor_db
    started = time.monotonic()
    outputs = {name: run() for name, run in candidates.items()}  # warm-up, and the outputs compared
    seconds: dict[str, float] = {}
    for _ in range(CALIBRATION_ROUNDS):  # alternated, so a burst of load hits every candidate alike
        for name, run in candidates.items():
            seconds[name] = min(seconds.get(name, float("inf")), cpu_seconds(run))
    agreement = {name: agreement_db(outputs[reference], out) for name, out in outputs.items()}
    agreement[reference] = float("inf")
    best = reference
    for name in candidates:
        if name != reference and agreement[name] >= floor and seconds[name] < MARGIN * seconds[best]:
            best = name
    choice = Choice(best, key, False, seconds, agreement, time.monotonic() - started)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"runtime": best, "seconds": seconds, "agreement_db": {k: min(v, 999.0) for k, v in agreement.items()}}
    path = folder / f"{key}.json"
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)  # readers see a whole file or none
    logger.info("musicsep runtime: {}", choice.describe())
    return choice
