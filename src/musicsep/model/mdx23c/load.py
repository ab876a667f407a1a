"""Loading an MDX23C checkpoint (`.ckpt`) with its MSST YAML into a streaming separator.

The public checkpoints (UVR's `MDX23C-8KFFT-InstVoc_HQ.ckpt` and the MSST community ones) are
plain `torch.save` state dicts, sometimes wrapped as `{"state_dict": ...}` by trainers; they load
unchanged with `load_state_dict(strict=True)`. Before that, the keys and shapes are compared with
the network the YAML describes, so a checkpoint of another model or another config is refused with
what differs instead of torch's page-long error, and nothing is half-loaded.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from musicsep.model.errors import ModelUnavailable
from musicsep.model.mdx23c.hparams import hyperparams_from_config
from musicsep.model.mdx23c.network import TfcTdfNet
from musicsep.model.msst.config import load_msst_config
from musicsep.model.msst.stream import MsstSeparator, build_msst_separator

#: Keys under which trainers nest the weights (MSST accepts the same ones).
_WRAPPERS = ("state_dict", "model_state_dict", "state")
#: How many differing keys a message names.
_SHOWN = 3


def read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.ckpt`, read without running pickled code (`weights_only`)."""
    name = Path(checkpoint).name
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelUnavailable(f"the checkpoint {name} cannot be read ({exc.strerror or 'I/O error'})") from exc
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelUnavailable(
            f"the checkpoint {name} is not a readable PyTorch checkpoint "
            "(truncated or another kind of file); download it again"
        ) from exc
    for key in _WRAPPERS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelUnavailable(f"the checkpoint {name} holds no state dict of tensors")
    return dict(loaded)


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def check_layout(module: torch.nn.Module, state: Mapping[str, torch.Tensor], checkpoint: str, config: str) -> None:
    """`ModelUnavailable` naming what differs when `state` is not the network `config` describes."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [
        f"{key} {tuple(state[key].shape)} instead of {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state and state[key].shape != tensor.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} weights it does not know ({_listed(unexpected)})")
    if reshaped:
        problems.append(f"{len(reshaped)} weights of another shape ({_listed(reshaped)})")
    if problems:
        raise ModelUnavailable(
            f"the checkpoint {checkpoint} does not match the MDX23C network of {config}: "
            + "; ".join(problems)
            + ". Use the YAML that came with this checkpoint"
        )


def load_mdx23c(
    checkpoint: Path,
    config: Path,
    *,
    name: str,
    device: str = "cpu",
    precision: str = "fp32",
    chunk_size: int | None = None,
    num_overlap: int | None = None,
) -> MsstSeparator:
    """The streaming separator of an MDX23C checkpoint and its YAML (chunking: musicsep.model.msst.stream).

    `chunk_size` / `num_overlap` override the config's (the catalog's per-model chunk length).
    """
    msst = load_msst_config(config)
    params = hyperparams_from_config(msst.raw)
    params.check_chunk(int(chunk_size or msst.chunk_size))
    state = read_state_dict(checkpoint)
    module = TfcTdfNet(params)
    check_layout(module, state, Path(checkpoint).name, msst.name)
    module.load_state_dict(state, strict=True)
    return build_msst_separator(
        module, msst, name=name, device=device, precision=precision, chunk_size=chunk_size, num_overlap=num_overlap
    )
