"""MDX23C chunked as python-audio-separator 0.47 and UVR chunk it (the `uvr` rule's MDX23C branch).

`audio_separator_mdx23c` below is the tests' own whole-track reading of that rule: the track
zero-padded by chunk - step in front and by (step - (frames - chunk) mod step) + chunk - step
behind, every whole chunk of the padded track every step (`unfold`), the outputs summed without a
window, divided by the overlap, the padding cut off. A small random TFC-TDF v3, saved under UVR's
file name and loaded through `load_mdx23c`, must stream to the same stems.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicsep.model.mdx23c import TfcTdfNet, hyperparams_from_config, load_mdx23c
from musicsep.model.msst.config import load_msst_config
from musicsep.model.spill import ArrayReader

SMALL = Path(__file__).parent / "msst_configs" / "mdx23c_small.yaml"
CHUNK, OVERLAP = 3840, 4  # the small config: hop 256 x (dim_t 16 - 1), num_overlap 4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def audio_separator_mdx23c(model: torch.nn.Module, mix: np.ndarray, chunk: int, overlap: int) -> np.ndarray:
    frames = mix.shape[-1]
    step = chunk // overlap
    tail = step - (frames - chunk) % step
    padded = np.concatenate(
        [np.zeros((2, chunk - step), np.float32), mix, np.zeros((2, tail + chunk - step), np.float32)], axis=1
    )
    chunks = torch.from_numpy(padded).unfold(1, chunk, step).transpose(0, 1)
    total = None
    with torch.inference_mode():
        for index, part in enumerate(chunks):
            out = model(part[None].contiguous())[0].numpy()
            if total is None:
                total = np.zeros((*out.shape[:-1], padded.shape[-1]), np.float32)
            total[..., index * step : index * step + chunk] += out
    total /= overlap
    return total[..., chunk - step : chunk - step + frames]


@pytest.fixture(scope="module")
def instvoc(tmp_path_factory):
    """A random small TFC-TDF v3 as UVR's `MDX23C-8KFFT-InstVoc_HQ.ckpt` beside its YAML."""
    folder = tmp_path_factory.mktemp("mdx23c")
    torch.manual_seed(7)
    model = TfcTdfNet(hyperparams_from_config(load_msst_config(SMALL).raw)).eval()
    torch.save(model.state_dict(), folder / "MDX23C-8KFFT-InstVoc_HQ.ckpt")
    (folder / "MDX23C-8KFFT-InstVoc_HQ.yaml").write_text(SMALL.read_text())
    return load_mdx23c(
        folder / "MDX23C-8KFFT-InstVoc_HQ.ckpt", folder / "MDX23C-8KFFT-InstVoc_HQ.yaml", name="m", chunking="uvr"
    )


class WidestReader(ArrayReader):
    widest = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        self.widest = max(self.widest, stop - start)
        return super().read(start, stop)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize(
    "frames",
    [
        10_001,  # not a multiple of the 960-sample step
        3_000,  # shorter than one chunk
        CHUNK,  # exactly one chunk: a whole step of tail padding
        CHUNK + 960,  # one step past a chunk
    ],
)
def test_streamed_equals_audio_separator_whole_track(instvoc, frames, batch_size):
    assert (instvoc.chunking, instvoc.chunk_size, instvoc.num_overlap) == ("uvr", CHUNK, OVERLAP)
    mix = (np.random.default_rng(frames).standard_normal((2, frames)) * 0.3).astype(np.float32)
    options = type("Options", (), {"batch_size": batch_size, "shifts": 0})()
    run = instvoc.prepare(frames, ["vocals", "instrumental"], options)
    reader = WidestReader(mix)
    out = np.concatenate(list(run.blocks(reader, lambda: None)), axis=-1)
    reference = audio_separator_mdx23c(instvoc.model, mix, CHUNK, OVERLAP)
    assert out.shape == reference.shape == (2, 2, frames)
    assert np.abs(out - reference).max() < 1e-4
    assert np.abs(reference).max() > 1e-3
    assert reader.widest <= CHUNK
    step = CHUNK // OVERLAP
    padded = frames + step - (frames - CHUNK) % step + 2 * (CHUNK - step)
    assert run.chunks == (padded - CHUNK) // step + 1
