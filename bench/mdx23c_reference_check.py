"""One-off equivalence check: musicsep's TFC-TDF v3 against the reference implementation, same weights.

The reference file is not in this repository (its code is not ours): fetch it and pass its path,

    git -C MIRROR show HEAD:models/mdx23c_tfc_tdf_v3.py > /tmp/mdx23c_ref/mdx23c_tfc_tdf_v3.py
    .venv/bin/python bench/mdx23c_reference_check.py /tmp/mdx23c_ref/mdx23c_tfc_tdf_v3.py \
        --config tests/model/msst_configs/mdx23c_instvoc_hq.yaml

(ZFTurbo's Music-Source-Separation-Training; UVR's lib_v5/tfc_tdf_v3.py works too, with --uvr). The
reference's network is built from the YAML and random-initialised (norm affine parameters and
BatchNorm statistics perturbed so they count), its state dict is loaded into ours with
strict=True, and both run the same random audio. Prints the key count and the max abs difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from musicsep.model.mdx23c.hparams import hyperparams_from_config  # noqa: E402
from musicsep.model.mdx23c.network import TfcTdfNet  # noqa: E402


class _TupleLoader(yaml.SafeLoader):
    """SafeLoader that reads MSST's `!!python/tuple` tags as tuples (nothing else beyond safe YAML)."""


_TupleLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
)


class _Attrs(dict):
    """The YAML mapping with attribute access, which is how the reference reads its config."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc


def _attrs(value):
    if isinstance(value, dict):
        return _Attrs({k: _attrs(v) for k, v in value.items()})
    return value


def _targets(config) -> list:
    training = config["training"]
    return [training["target_instrument"]] if training.get("target_instrument") else training["instruments"]


def _import_reference(path: Path, targets: list):
    # The reference imports one helper from its repository's utils; stand in for it.
    utils = types.ModuleType("utils")
    helpers = types.ModuleType("utils.model_utils")
    helpers.prefer_target_instrument = lambda config: _targets(config)
    sys.modules.setdefault("utils", utils)
    sys.modules.setdefault("utils.model_utils", helpers)
    spec = importlib.util.spec_from_file_location("mdx23c_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _perturb(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith(("weight", "running_var")) and tensor.ndim == 1:
                tensor.copy_(1 + 0.2 * torch.rand(tensor.shape, generator=gen))
            elif tensor.ndim == 1:
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="path of the fetched reference tfc_tdf_v3 file")
    parser.add_argument("--config", type=Path, required=True, help="MSST-format MDX23C YAML")
    parser.add_argument("--uvr", action="store_true", help="the reference is UVR's lib_v5/tfc_tdf_v3.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    raw = yaml.load(args.config.read_text(), Loader=_TupleLoader)
    config = _attrs(raw)
    reference_module = _import_reference(args.reference, _targets(config))
    torch.manual_seed(args.seed)
    reference = (
        reference_module.TFC_TDF_net(config, device="cpu") if args.uvr else reference_module.TFC_TDF_net(config)
    ).eval()
    _perturb(reference, args.seed)

    ours = TfcTdfNet(hyperparams_from_config(raw)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    keys = ours.state_dict()
    assert list(keys) == list(reference.state_dict()), "key order differs"

    chunk = config["inference"].get("chunk_size") or config["audio"]["chunk_size"]
    audio = 0.5 * torch.randn(
        args.batch, config["audio"]["num_channels"], chunk, generator=torch.Generator().manual_seed(args.seed + 1)
    )
    with torch.inference_mode():
        started = time.perf_counter()
        expected = reference(audio)
        reference_s = time.perf_counter() - started
        started = time.perf_counter()
        got = ours(audio)
        ours_s = time.perf_counter() - started
    if expected.ndim == got.ndim - 1:  # UVR drops the stem axis of a single-target model
        expected = expected.unsqueeze(1)
    diff = (got - expected).abs().max().item()
    print(
        f"config {args.config.name}: {len(keys)} state-dict keys, "
        f"{sum(t.numel() for t in keys.values())} values, output {tuple(got.shape)}"
    )
    print(
        f"max abs diff {diff:.3e} (output max abs {expected.abs().max().item():.3e}); "
        f"forward reference {reference_s:.2f} s, ours {ours_s:.2f} s"
    )


if __name__ == "__main__":
    main()
