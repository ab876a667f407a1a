"""Loading an MDX23C checkpoint (`.ckpt`) with its MSST YAML into a streaming separator.

The public checkpoints (UVR's `MDX23C-8KFFT-InstVoc_HQ.ckpt` and the MSST community ones) are
plain `torch.save` state dicts, sometimes wrapped by trainers; they are read and loaded with
`load_state_dict(strict=True)` the way every MSST checkpoint is (musicsep.model.msst.checkpoint):
a checkpoint of another model or another config is refused with what differs instead of torch's
page-long error, and nothing is half-loaded.
"""

from __future__ import annotations

from pathlib import Path

from musicsep.model.mdx23c.hparams import hyperparams_from_config
from musicsep.model.mdx23c.network import TfcTdfNet
from musicsep.model.msst.checkpoint import load_strictly, read_state_dict
from musicsep.model.msst.config import load_msst_config
from musicsep.model.msst.stream import MsstSeparator, build_msst_separator


def load_mdx23c(
    checkpoint: Path,
    config: Path,
    *,
    name: str,
    device: str = "cpu",
    precision: str = "fp32",
    chunk_size: int | None = None,
    num_overlap: int | None = None,
    chunking: str = "msst",
) -> MsstSeparator:
    """The streaming separator of an MDX23C checkpoint and its YAML, chunked by the `chunking` rule
    (musicsep.model.msst.chunking): MSST's unless asked; the catalog asks for audio-separator's
    (`uvr`) through model/families.py.

    `chunk_size` / `num_overlap` override the config's (the catalog's per-model chunk length).
    """
    msst = load_msst_config(config)
    params = hyperparams_from_config(msst.raw)
    params.check_chunk(int(chunk_size or (msst.uvr_chunk_size if chunking == "uvr" else msst.chunk_size)))
    state = read_state_dict(checkpoint)
    module = TfcTdfNet(params)
    load_strictly(module, state, Path(checkpoint).name, msst.name)
    return build_msst_separator(
        module,
        msst,
        name=name,
        device=device,
        precision=precision,
        chunk_size=chunk_size,
        num_overlap=num_overlap,
        chunking=chunking,
        family="mdx23c",
    )
