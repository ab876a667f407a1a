"""Which runtime runs a Demucs separator's HTDemucs networks on the CPU: torch, or OpenVINO (issue 17).

`runtime` is Settings.runtime: `torch` (and `onnxruntime`, which has no path here) keep the
modules; `openvino` runs every HTDemucs member's network in OpenVINO (openvino_core.py) at the
separator's precision, f32 for `fp32`, bf16 for `bf16` where the CPU plugin runs bf16 natively;
`auto` reads the choice saved for these weights, runtime versions, CPU and precision, or converts
and measures both runtimes once on one segment (model/runtime/choice.py); a network too small to
pay back its conversion (PAYBACK_PARAMETERS) is recorded as torch without converting anything. A fp32 choice must
agree with torch to AGREEMENT_DB (60 dB), a bf16 one with torch's bf16 autocast to BF16_FLOOR_DB.
CUDA, fp16, other Demucs architectures and a missing openvino wheel all mean torch.

Demucs's loaders do not say which file a member came from (folder `.th`, safetensors, the
Hugging Face cache, a download), so the key's digest is the sha256 of the member's weights and
constructor arguments: the same network from any of those files is one key, any changed weight
another. Each member of a bag (htdemucs_ft's four) is converted to its own IR; the choice is
one per separator, measured on its first member (the members of a bag share the architecture,
so they run at the same speed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from loguru import logger

from musicsep.model.demucs_runtime.openvino_core import (
    IR_FORMAT,
    OpenVinoHTDemucs,
    bf16_capable,
    convert,
    supports,
    training_length,
)
from musicsep.model.demucs_stream import DemucsSeparator, attention_through_sdpa, autocast
from musicsep.model.mdx.session import cpu_threads
from musicsep.model.runtime.choice import (
    cache_key,
    cached_choice,
    calibrate,
    cpu_fingerprint,
    default_cache_dir,
    runtime_available,
    runtime_versions,
)

#: bf16 against bf16 (each ~45 dB from fp32 on the full-size model) is held to the fast mode's floor.
BF16_FLOOR_DB = 40.0
#: OpenVINO streams per compiled network on the CPU (docs/performance.md, "HTDemucs on OpenVINO").
STREAMS = 1
#: `auto` converts nothing for a network with fewer parameters than this: a conversion (10-20 s
#: for the tests' tiny HTDemucs, 22 k parameters, 60-160 s for the released one, 26.9 M) would take
#: thousands of such a network's segments to pay back. Counted, not timed: a timed pass of the tiny
#: network cost 0.06 CPU s on a quiet machine and 0.66 on a loaded one (OpenMP threads spinning),
#: close enough to any time threshold that the load, not the network, decided.
PAYBACK_PARAMETERS = 1_000_000


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the module's class, constructor arguments and every parameter and buffer."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    digest.update(repr(getattr(model, "_init_args_kwargs", None)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def apply_runtime(separator: DemucsSeparator, *, runtime: str, cache_dir: Path | None) -> None:
    """Register an OpenVINO network for each HTDemucs member of `separator` when `runtime` resolves
    to OpenVINO (`separator.runtimes`); otherwise leave it in torch. Records the choice made."""
    precision = separator.precision
    members = [member for member in separator.members()[0] if supports(member)]
    usable = separator.device.type == "cpu" and precision in ("fp32", "bf16") and bool(members)
    if runtime not in ("openvino", "auto") or not usable or not runtime_available("openvino"):
        if runtime == "openvino":
            logger.warning(
                "musicsep runtime: {} runs in torch (OpenVINO: HTDemucs on the CPU, fp32 or bf16)", separator.name
            )
        return
    if precision == "bf16" and not bf16_capable():
        if runtime == "openvino":
            logger.warning(
                "musicsep runtime: {} runs in torch (no native bf16 in OpenVINO on this CPU)", separator.name
            )
        return
    folder = cache_dir or default_cache_dir()
    versions, cpu = runtime_versions(["torch", "openvino"]), cpu_fingerprint()
    digests = [weights_digest(member) for member in members]
    key = cache_key(hashlib.sha256("".join(digests).encode()).hexdigest(), versions, cpu, f"{IR_FORMAT} {precision}")
    small = sum(param.numel() for param in members[0].parameters()) < PAYBACK_PARAMETERS
    choice = cached_choice(folder, key, ("torch", "openvino")) if runtime == "auto" else None
    if choice is not None and choice.runtime == "torch":
        separator.runtime_choice = choice
        return
    member, x = members[0], calibration_chunk(members[0])

    def in_torch() -> np.ndarray:
        with torch.inference_mode(), attention_through_sdpa(), autocast(separator.device, precision):
            return member(x).float().numpy()

    if runtime == "auto" and small:
        # Too small to pay back a conversion: torch is recorded as the choice (over one that older
        # code may have recorded), nothing converted.
        separator.runtime_choice = calibrate({"torch": in_torch}, reference="torch", key=key, folder=folder)
        return
    networks = _networks(separator.name, members, digests, precision, folder, versions, cpu)
    if runtime == "auto" and choice is None:
        choice = calibrate(
            {"torch": in_torch, "openvino": lambda: networks[id(member)](x).numpy()},
            reference="torch",
            key=key,
            folder=folder,
            floor_db=BF16_FLOOR_DB if precision == "bf16" else None,
        )
        if choice.runtime == "torch":
            separator.runtime_choice = choice
            return
    for converted in members:
        release_weights(converted)
    separator.runtimes = networks
    separator.runtime = "openvino"
    separator.runtime_choice = choice


def release_weights(member: torch.nn.Module) -> None:
    """Free the torch copy of weights OpenVINO now holds its own copy of (168 MB for HTDemucs), so
    the process never holds both. The module stays for its spectrogram methods and attributes; its
    torch forward, were anything to call it, fails loudly instead of running without weights."""
    for param in member.parameters():
        param.data = torch.empty(0, dtype=param.dtype)


def _networks(name, members, digests, precision, folder, versions, cpu) -> dict[int, OpenVinoHTDemucs]:
    """id(member) -> its OpenVINO network, converting each member's IR on first use."""
    networks = {}
    for member, digest in zip(members, digests, strict=True):
        ir = folder / "openvino" / cache_key(digest, versions, cpu, IR_FORMAT) / "ir" / "core.xml"
        if not ir.exists():
            logger.info("musicsep runtime: converting {}'s network for OpenVINO (once per model file)", name)
            convert(member, ir)
        networks[id(member)] = OpenVinoHTDemucs(
            member,
            ir,
            precision=precision,
            threads=cpu_threads(),
            streams=STREAMS,
            cache_dir=ir.parent.parent / "compiled",
        )
    return networks


def calibration_chunk(model: torch.nn.Module) -> torch.Tensor:
    """One training-length segment of fixed noise (the same in every process)."""
    rng = np.random.default_rng(17)
    shape = (1, model.audio_channels, training_length(model))
    return torch.from_numpy((0.3 * rng.standard_normal(shape)).astype(np.float32))
