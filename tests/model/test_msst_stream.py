"""MSST chunked streaming (model/msst/stream.py, with the `msst` rule of model/msst/chunking.py)
against a whole-track reference of the tests' own.

`whole_track_demix` (tests/model/msst_models.py) is a direct reading of MSST's `demix` arithmetic
(generic mode, batch size 1): the whole track in memory, padded, chunked, windowed, summed and
divided at the end.
The streamed output must equal it, while holding no more than a chunk of audio at a time.
The module is a small real torch network whose output depends on where a sample sits inside its
chunk, so a chunk placed or weighted differently from the reference shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.msst_models import whole_track_demix
from musicsep.model.errors import Cancelled, InvalidOptions, ModelUnavailable
from musicsep.model.msst.chunking import plan_chunks
from musicsep.model.msst.config import load_msst_config, musicsep_stem_names, validate_msst_config
from musicsep.model.msst.stream import build_msst_separator
from musicsep.model.spill import ArrayReader

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ChunkSensitive(torch.nn.Module):
    """(batch, channels, t) -> (batch, stems, channels, t), or (batch, channels, t) for one stem."""

    def __init__(self, stems: int, channels: int = 2) -> None:
        super().__init__()
        self.stems = stems
        self.conv = torch.nn.Conv1d(channels, stems * channels, 9, padding=4)
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        b, c, t = x.shape
        ramp = torch.linspace(0.5, 1.5, t)  # position inside the chunk matters
        y = torch.tanh(self.conv(x)) * ramp + x.repeat(1, self.stems, 1) * 0.3
        y = y.reshape(b, self.stems, c, t)
        return y[:, 0] if self.stems == 1 else y


def config(instruments, target=None, chunk=4410, num_overlap=4, **inference):
    training = {"instruments": instruments}
    if target:
        training["target_instrument"] = target
    return validate_msst_config(
        {
            "audio": {"chunk_size": chunk, "sample_rate": 44100, "num_channels": 2},
            "model": {},
            "training": training,
            "inference": {"num_overlap": num_overlap, "batch_size": 1, **inference},
        },
        "test.yaml",
    )


class CountingReader(ArrayReader):
    """A real in-memory reader that remembers the longest span it was asked for."""

    widest = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        self.widest = max(self.widest, stop - start)
        return super().read(start, stop)


def stream(separator, mix, stems, batch_size=1, on_chunk=lambda: None):
    run = separator.prepare(mix.shape[-1], stems, type("Options", (), {"batch_size": batch_size, "shifts": 0})())
    reader = CountingReader(mix)
    blocks = list(run.blocks(reader, on_chunk))
    return run, reader, blocks


def noise(frames: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, frames)) * 0.3).astype(np.float32)


@pytest.mark.parametrize(
    ("frames", "num_overlap", "batch_size"),
    [
        (22_051, 4, 1),  # padded track, last chunk reflect-padded, length not a multiple of the step
        (22_051, 4, 3),  # batched: same output as batch size 1
        (15_877, 2, 1),
        (9_001, 1, 2),  # no overlap: chunk joins weigh 0 and come out 0, as in the reference
        (5_000, 4, 1),  # too short for the border padding (<= 2 * border)
        (1_500, 2, 1),  # shorter than half a chunk: zero-padded
    ],
)
def test_streamed_equals_whole_track_reference(frames, num_overlap, batch_size):
    torch.manual_seed(0)
    model = ChunkSensitive(stems=2).eval()
    cfg = config(["bass", "drums"], num_overlap=num_overlap)
    separator = build_msst_separator(model, cfg, name="tiny")
    mix = noise(frames)
    run, reader, blocks = stream(separator, mix, ["bass", "drums"], batch_size)
    streamed = np.concatenate(blocks, axis=-1)
    reference = whole_track_demix(model, mix, 4410, num_overlap)
    assert streamed.shape == reference.shape == (2, 2, frames)
    assert np.abs(streamed - reference).max() < 1e-6
    assert run.chunks == len(plan_chunks("msst", frames, 4410, num_overlap).offsets)
    assert reader.widest <= 4410  # never more than one chunk of the track read at once
    assert max(block.shape[-1] for block in blocks) <= 4410 * batch_size


def test_memory_does_not_grow_with_length():
    model = ChunkSensitive(stems=1).eval()
    separator = build_msst_separator(model, config(["vocals", "other"], "vocals"), name="tiny")
    short = stream(separator, noise(15_000), ["vocals"])[2]
    long = stream(separator, noise(90_000), ["vocals"])[2]
    assert max(b.shape[-1] for b in long) == max(b.shape[-1] for b in short) <= 4410
    assert sum(b.shape[-1] for b in long) == 90_000


def test_single_target_gives_target_and_mix_minus_target():
    torch.manual_seed(2)
    model = ChunkSensitive(stems=1).eval()
    separator = build_msst_separator(model, config(["Vocals", "Instrumental"], "Vocals"), name="tiny")
    assert separator.sources == ["vocals", "instrumental"]
    mix = noise(12_345)
    out = np.concatenate(stream(separator, mix, ["instrumental", "vocals"])[2], axis=-1)
    reference = whole_track_demix(model, mix, 4410, 4)[0]
    assert np.abs(out[1] - reference).max() < 1e-6
    assert np.abs(out[0] - (mix - reference)).max() < 1e-6
    only_complement = np.concatenate(stream(separator, mix, ["instrumental"])[2], axis=-1)
    assert np.abs(only_complement[0] - out[0]).max() == 0


def test_a_requested_subset_of_a_multi_stem_model():
    model = ChunkSensitive(stems=4).eval()
    cfg = config(["drums", "bass", "other", "vocals"])
    separator = build_msst_separator(model, cfg, name="tiny")
    assert separator.sources == ["drums", "bass", "other", "vocals"]
    mix = noise(10_000)
    out = np.concatenate(stream(separator, mix, ["vocals", "bass"])[2], axis=-1)
    reference = whole_track_demix(model, mix, 4410, 4)
    assert np.abs(out - reference[[3, 1]]).max() < 1e-6


def test_on_chunk_once_per_chunk_and_cancel_within_one_chunk():
    model = ChunkSensitive(stems=1).eval()
    separator = build_msst_separator(model, config(["vocals", "other"], "vocals"), name="tiny")
    calls = []
    run = stream(separator, noise(40_000), ["vocals"], on_chunk=lambda: calls.append(1))[0]
    assert len(calls) == run.chunks

    def stop_at_second() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled("the separation was cancelled")

    calls.clear()
    model.forwards = 0
    with pytest.raises(Cancelled):
        stream(separator, noise(40_000), ["vocals"], on_chunk=stop_at_second)
    assert model.forwards == 2


def test_bf16_autocast_stays_close_to_fp32():
    torch.manual_seed(3)
    model = ChunkSensitive(stems=1).eval()
    cfg = config(["vocals", "other"], "vocals")
    mix = noise(9_000)
    fp32 = np.concatenate(stream(build_msst_separator(model, cfg, name="t"), mix, ["vocals"])[2], axis=-1)
    bf16 = np.concatenate(
        stream(build_msst_separator(model, cfg, name="t", precision="bf16"), mix, ["vocals"])[2], axis=-1
    )
    assert 0 < np.abs(bf16 - fp32).max() < 0.05


def test_unknown_stem_shifts_and_precision_are_refused():
    separator = build_msst_separator(ChunkSensitive(stems=1), config(["vocals", "other"], "vocals"), name="t")
    with pytest.raises(InvalidOptions, match="drums"):
        separator.prepare(1000, ["drums"])
    with pytest.raises(InvalidOptions, match="shifts"):
        separator.prepare(1000, ["vocals"], type("Options", (), {"shifts": 2, "batch_size": 1})())
    with pytest.raises(InvalidOptions, match="precision"):
        build_msst_separator(ChunkSensitive(stems=1), config(["vocals", "other"], "vocals"), name="t", precision="int8")


def test_a_model_with_other_stems_than_its_config_is_model_unavailable():
    separator = build_msst_separator(ChunkSensitive(stems=2), config(["vocals", "other"], "vocals"), name="t")
    with pytest.raises(ModelUnavailable, match="config names 1 stem"):
        stream(separator, noise(5000), ["vocals"])


def test_stem_names():
    assert musicsep_stem_names(["Vocals", "Instrumental"]) == ["vocals", "instrumental"]
    assert musicsep_stem_names(["vocals", "other"]) == ["vocals", "instrumental"]
    assert musicsep_stem_names(["drums", "bass", "other", "vocals"]) == ["drums", "bass", "other", "vocals"]
    assert musicsep_stem_names(["Lead Vocals", "Backing/Vocals"]) == ["lead_vocals", "backing_vocals"]


def test_config_accessors_and_tuples(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(
        "audio: {chunk_size: 352800, sample_rate: 44100}\n"
        "model:\n  freqs_per_bands: !!python/tuple\n  - 2\n  - 4\n"
        "training: {instruments: [Vocals, Instrumental], target_instrument: Vocals}\n"
        "inference: {num_overlap: 2, chunk_size: 485100}\n"
    )
    cfg = load_msst_config(path)
    assert cfg.model["freqs_per_bands"] == (2, 4)
    assert (cfg.chunk_size, cfg.num_overlap, cfg.samplerate, cfg.num_channels) == (485100, 2, 44100, 2)
    assert cfg.model_outputs == ["Vocals"] and cfg.target_instrument == "Vocals"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("just a sentence\n", "mapping"),
        ("audio: {chunk_size: 10}\nmodel: {}\ntraining: {instruments: [a]}\n", "inference"),
        ("audio: {}\nmodel: {}\ntraining: {instruments: [a]}\ninference: {num_overlap: 2}\n", "chunk_size"),
        (
            "audio: {chunk_size: 100}\nmodel: {}\ntraining: {instruments: []}\ninference: {num_overlap: 2}\n",
            "instruments",
        ),
        ("a: [unclosed\n", "valid YAML"),
        ("\x00\x01binary", "valid YAML"),
    ],
)
def test_files_that_are_not_model_configs(tmp_path, text, why):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ModelUnavailable, match=why) as error:
        load_msst_config(path)
    assert str(tmp_path) not in str(error.value)


def test_python_object_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"audio: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ModelUnavailable, match="not a model config"):
        load_msst_config(path)
    assert not marker.exists()
