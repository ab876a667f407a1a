"""RoFormers chunked as python-audio-separator 0.47 and UVR chunk them (the `uvr` rule), streamed.

`audio_separator_demix` below is the tests' own whole-track reading of that rule: no padding,
chunks every chunk // overlap with the last one end-aligned, a symmetric Hamming window (written
out from its formula), the weighted sum divided by the summed weights (at least 1e-10), and only
the samples the network returns counted. The streamed output of tiny random RoFormers must equal
it while reading no more than one chunk of the track at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.msst_models import CONFIGS, build_roformer_checkpoint
from musicsep.model.msst.config import load_msst_config
from musicsep.model.roformer import load_roformer
from musicsep.model.spill import ArrayReader

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHUNK = 6400  # the tiny configs' chunk_size (they give no inference.dim_t)


def noise(frames: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, frames)) * 0.3).astype(np.float32)


def chunk_starts(frames: int, chunk: int, step: int) -> list[int]:
    starts: list[int] = []
    offset = 0
    while offset < frames:
        if offset + chunk >= frames:
            if not starts or starts[-1] != max(frames - chunk, 0):
                starts.append(max(frames - chunk, 0))
            break
        starts.append(offset)
        offset += step
    return starts


def audio_separator_demix(model: torch.nn.Module, mix: np.ndarray, chunk: int, overlap: int) -> np.ndarray:
    """(outputs, channels, frames) of the whole track, audio-separator's RoFormer arithmetic."""
    frames = mix.shape[-1]
    n = np.arange(chunk)
    window = (0.54 - 0.46 * np.cos(2 * np.pi * n / (chunk - 1))).astype(np.float32)
    result = counter = None
    for start in chunk_starts(frames, chunk, chunk // overlap):
        part = torch.from_numpy(mix[:, start : start + chunk].copy())[None]
        with torch.inference_mode():
            out = model(part)[0].numpy()
        out = out[None] if out.ndim == 2 else out
        if result is None:
            result = np.zeros((out.shape[0], *mix.shape), np.float32)
            counter = np.zeros(frames, np.float32)
        used = min(part.shape[-1], out.shape[-1])
        result[..., start : start + used] += out[..., :used] * window[:used]
        counter[start : start + used] += window[:used]
    return result / np.maximum(counter, 1e-10)


class WidestReader(ArrayReader):
    """A real in-memory reader that remembers the longest span it was asked for."""

    widest = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        self.widest = max(self.widest, stop - start)
        return super().read(start, stop)


def separate(separator, mix: np.ndarray, stems, batch_size: int = 1):
    options = type("Options", (), {"batch_size": batch_size, "shifts": 0})()
    run = separator.prepare(mix.shape[-1], list(stems), options)
    reader = WidestReader(mix)
    blocks = list(run.blocks(reader, lambda: None))
    return run, reader, blocks


@pytest.fixture(scope="module")
def viperx(tmp_path_factory):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path_factory.mktemp("viperx"), "viperx_1297", seed=3)
    return load_roformer(ckpt, yaml_path, name="viperx", chunking="uvr")


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize(
    ("frames", "starts"),
    [
        (5 * 1600 + 777, [0, 1600, 2377]),  # not a multiple of the step: the last chunk end-aligned
        (3001, [0]),  # shorter than one chunk: one chunk of its own length
        (CHUNK, [0]),  # exactly one chunk
        (CHUNK + 1600, [0, 1600]),  # one step past a chunk
    ],
)
def test_streamed_equals_audio_separator_whole_track(viperx, frames, starts, batch_size):
    assert (viperx.chunking, viperx.chunk_size, viperx.num_overlap) == ("uvr", CHUNK, 4)
    mix = noise(frames)
    run, reader, blocks = separate(viperx, mix, ["vocals", "instrumental"], batch_size)
    out = np.concatenate(blocks, axis=-1)
    reference = audio_separator_demix(viperx.model, mix, CHUNK, 4)[0]
    assert chunk_starts(frames, CHUNK, 1600) == starts and run.chunks == len(starts)
    assert out.shape == (2, 2, frames)
    assert np.abs(out[0] - reference).max() < 1e-4
    assert np.abs(out[1] - (mix - reference)).max() < 1e-4
    assert np.abs(reference).max() > 1e-3  # the network really ran
    assert reader.widest <= CHUNK * batch_size  # one chunk per batch row, never the whole track


def test_a_long_track_streams_in_pieces_with_memory_of_one_chunk(tmp_path):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, "kim_vocals", seed=4)
    separator = load_roformer(ckpt, yaml_path, name="kim", chunking="uvr")
    mix = noise(12 * CHUNK + 123)
    run, reader, blocks = separate(separator, mix, ["vocals"])
    reference = audio_separator_demix(separator.model, mix, CHUNK, 2)[0]
    assert np.abs(np.concatenate(blocks, axis=-1)[0] - reference).max() < 1e-4
    assert len(blocks) == run.chunks == 24  # a block as each chunk finishes
    assert reader.widest <= CHUNK and max(block.shape[-1] for block in blocks) <= CHUNK


def test_the_chunk_is_the_stft_hop_times_dim_t_minus_one(tmp_path):
    ckpt, _ = build_roformer_checkpoint(tmp_path, "viperx_1297", seed=5)
    config = tmp_path / "with_dim_t.yaml"
    config.write_text(
        (CONFIGS / "bs_roformer_tiny.yaml").read_text().replace("inference:\n", "inference:\n  dim_t: 51\n")
    )
    separator = load_roformer(ckpt, config, name="m", chunking="uvr")
    assert load_msst_config(config).uvr_chunk_size == separator.chunk_size == 64 * 50
    mix = noise(9000)
    out = np.concatenate(separate(separator, mix, ["vocals"])[2], axis=-1)[0]
    assert np.abs(out - audio_separator_demix(separator.model, mix, 3200, 4)[0]).max() < 1e-4


def test_a_track_shorter_than_the_stft_still_separates(viperx):
    mix = noise(100)  # shorter than the tiny model's 256-point STFT
    out = np.concatenate(separate(viperx, mix, ["vocals", "instrumental"])[2], axis=-1)
    assert out.shape == (2, 2, 100) and np.isfinite(out).all()
    assert np.abs(out[0] + out[1] - mix).max() < 1e-6


def test_the_msst_rule_stays_available(tmp_path):
    ckpt, yaml_path = build_roformer_checkpoint(tmp_path, "viperx_1297", seed=3)
    msst = load_roformer(ckpt, yaml_path, name="m", chunking="msst")
    uvr = load_roformer(ckpt, yaml_path, name="m", chunking="uvr")
    mix = noise(12_000)
    # MSST pads 4800 reflected samples at each end and starts a chunk every step inside; the uvr
    # rule starts at 0, 1600, 3200, 4800 and end-aligns the last chunk at 5600.
    assert msst.chunking == "msst" and msst.prepare(12_000, ["vocals"]).chunks == 14
    assert uvr.prepare(12_000, ["vocals"]).chunks == 5
    got = [np.concatenate(separate(s, mix, ["vocals"])[2], axis=-1) for s in (msst, uvr)]
    assert np.abs(got[0] - got[1]).max() > 1e-3  # two different rules, two different outputs
