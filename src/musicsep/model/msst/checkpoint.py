"""Reading MSST-format PyTorch checkpoints (`.ckpt`) safely, and loading them strictly.

Files users have: a plain state dict (what UVR and audio-separator download, and MSST's
`scripts/prepare_weights_for_inference.py` writes, possibly in float16), or MSST's training
checkpoint, a dict with the weights under `model_state_dict` beside the optimiser's state. Other
trainers wrap them as `state_dict`, `model` or `state`; all of these are unwrapped here.
`torch.load(weights_only=True)` unpickles tensors and plain containers only, so a file from an
untrusted model folder cannot run code while it is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from musicsep.model.errors import ModelUnavailable

_WRAPPERS = ("model_state_dict", "state_dict", "model", "state")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, on the CPU; `ModelUnavailable` for anything else."""
    name = Path(path).name
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Files written by torch before 1.6 (not zip archives) cannot be memory-mapped.
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelUnavailable(f"the checkpoint {name} is missing") from exc
    except MemoryError:
        raise
    except Exception as exc:  # garbage makes torch.load fail many ways (IndexError, UnpicklingError, ...)
        raise ModelUnavailable(
            f"the checkpoint {name} cannot be read: it is truncated, damaged, or not a PyTorch weights "
            "file (only tensors and plain containers are accepted)"
        ) from exc
    state = _unwrap(loaded)
    if state is None:
        raise ModelUnavailable(f"the checkpoint {name} holds no model weights (no state dict found in it)")
    return state


def _unwrap(loaded: object) -> dict[str, torch.Tensor] | None:
    for _ in range(3):  # a wrapper in a wrapper at most (Lightning's `state_dict` in a dict)
        if not isinstance(loaded, dict):
            return None
        if loaded and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()):
            return loaded
        inner = next((loaded[key] for key in _WRAPPERS if isinstance(loaded.get(key), dict)), None)
        if inner is None:
            return None
        loaded = inner
    return None


def load_strictly(module: torch.nn.Module, state: dict[str, torch.Tensor], checkpoint: str, config: str) -> None:
    """`load_state_dict(strict=True)`, after saying in plain words what does not match, if anything."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)]
    if missing or unexpected or reshaped:
        details = []
        if missing:
            details.append(f"{len(missing)} weight(s) the config needs are missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} weight(s) the config does not know (e.g. {unexpected[0]})")
        if reshaped:
            key = reshaped[0]
            details.append(
                f"{len(reshaped)} weight(s) have other shapes (e.g. {key}: {tuple(state[key].shape)} in the "
                f"checkpoint, {tuple(expected[key].shape)} from the config)"
            )
        raise ModelUnavailable(
            f"the checkpoint {checkpoint} does not match its config {config}: "
            + "; ".join(details)
            + ". Use the YAML that was published with this checkpoint"
        )
    module.load_state_dict(state, strict=True)
