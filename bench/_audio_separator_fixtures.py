"""Model folders that python-audio-separator and musicsep both load offline, and tracks to separate.

Run as a child process (it imports torch; the bench that measures must not, see _measure.py):

    python bench/_audio_separator_fixtures.py mdx DIR [--size full|tiny]
    python bench/_audio_separator_fixtures.py roformer DIR --config YAML [--reduced]
    python bench/_audio_separator_fixtures.py track PATH SECONDS

Weights are random (speed and memory do not depend on their values); the graphs come from the
test builders (tests/model/mdx_graphs.py, tests/model/msst_models.py) and are saved under UVR's
file names. audio-separator finds a model by its file name in UVR's `download_checks.json`, reads
MDX-Net parameters from `mdx_model_data.json` keyed by the MD5 of the file's last 10,240,000 bytes
and RoFormer parameters from the YAML beside the checkpoint, and downloads none of these when
they exist in its `--model_file_dir`. So each folder gets a copy of UVR's public model list (from
../shared/data/uvr, never committed) and a parameter entry for the random file's own hash.

Tracks: real recordings cannot be shipped or downloaded here, so a track loops four synthetic
songs (bench/_multitrack.py: drums, bass, chords, a voice-like lead) written block by block as
32-bit float WAV, every song scaled to peak exactly TRACK_PEAK (see the bench's docstring for why).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UVR_DATA = REPO.parent / "shared" / "data" / "uvr"
MDX_FILE = "UVR-MDX-NET-Inst_HQ_4.onnx"
ROFORMER_FILE = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
ROFORMER_CONFIG = "model_bs_roformer_ep_317_sdr_12.9755.yaml"
HASHED_BYTES = 10_000 * 1024  # UVR's rule: MD5 of the last 10,240,000 bytes (the whole file if smaller)
SONGS = 4
SONG_SECONDS = 24.0
#: Below audio-separator's input normalisation threshold (0.9) and a power of two, so that its
#: multiplication of MDX-Net's output by the input's peak is exact to undo; stems stay below 1.0
#: (musicsep clamps float output to [-1, 1] like Demucs; audio-separator rescales loud stems).
TRACK_PEAK = 0.5


def uvr_hash(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - HASHED_BYTES))
        return hashlib.md5(f.read()).hexdigest()


def _model_lists(folder: Path, uvr_data: Path, mdx_entries: dict) -> None:
    """UVR's model list and the parameter tables audio-separator reads instead of downloading."""
    shutil.copyfile(uvr_data / "download_checks.json", folder / "download_checks.json")
    (folder / "mdx_model_data.json").write_text(json.dumps(mdx_entries, indent=1))
    (folder / "vr_model_data.json").write_text("{}")


def write_mdx_folder(folder: Path, size: str, uvr_data: Path) -> Path:
    """Inst HQ 4's geometry with random weights, and its UVR hash-table entry. UVR stores dim_t as
    an exponent (`mdx_dim_t_set` 8 is 2**8 = 256) and n_fft as `mdx_n_fft_scale_set`."""
    sys.path.insert(0, str(REPO))
    from tests.model.mdx_graphs import INST_HQ_4, build_mdx_onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx = build_mdx_onnx(folder / MDX_FILE, INST_HQ_4, size=size, seed=0)
    exponent = INST_HQ_4.dim_t.bit_length() - 1
    if 2**exponent != INST_HQ_4.dim_t:
        raise ValueError(f"dim_t {INST_HQ_4.dim_t} is not a power of two: UVR's table cannot hold it")
    entry = {
        "compensate": INST_HQ_4.compensate,
        "mdx_dim_f_set": INST_HQ_4.dim_f,
        "mdx_dim_t_set": exponent,
        "mdx_n_fft_scale_set": INST_HQ_4.n_fft,
        "primary_stem": INST_HQ_4.primary.capitalize(),
    }
    _model_lists(folder, uvr_data, {uvr_hash(onnx): entry})
    return folder


#: The reduced RoFormer of the RSS leg: ViperX 1297's config with a narrow, shallow transformer.
#: The STFT, bands, chunk and overlap stay as they are, so every buffer that grows with the track
#: is the same as the full model's; only the compute per chunk shrinks.
REDUCED = {"dim": 64, "depth": 1, "heads": 2, "dim_head": 16}


def reduced_config(text: str) -> str:
    """`text` (an MSST YAML) with the `model:` keys in REDUCED replaced, everything else verbatim
    (the `!!python/tuple` tags included, which a load-and-dump round trip would not keep)."""
    for key, value in REDUCED.items():
        text, count = re.subn(rf"^(  {key}:) \S+$", rf"\g<1> {value}", text, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"expected one model.{key} line in the config, found {count}")
    return text


def write_roformer_folder(folder: Path, config: Path, reduced: bool, uvr_data: Path) -> Path:
    """A BS-RoFormer checkpoint built from `config` (or its reduced variant), saved as ViperX
    1297's files (ckpt + YAML) so that both tools take it for that model."""
    sys.path.insert(0, str(REPO / "tests"))
    from model.msst_models import build_roformer_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    yaml_path = folder / ROFORMER_CONFIG
    text = config.read_text()
    yaml_path.write_text(reduced_config(text) if reduced else text)
    ckpt, _ = build_roformer_checkpoint(folder, yaml_path, seed=0)  # saved beside the YAML, same stem
    if ckpt.name != ROFORMER_FILE:
        raise RuntimeError(f"the builder wrote {ckpt.name}, not {ROFORMER_FILE}")
    _model_lists(folder, uvr_data, {})
    return folder


def write_track(path: Path, seconds: float) -> Path:
    """`seconds` of stereo 44.1 kHz float WAV looping SONGS synthetic songs, each at peak TRACK_PEAK."""
    import numpy as np
    import soundfile as sf

    sys.path.insert(0, str(REPO / "bench"))
    from _multitrack import SR, make_song

    cache = path.parent / "songs.npy"  # rendering takes a while; every track of a run loops the same songs
    if cache.exists():
        songs = list(np.load(cache))
    else:
        songs = []
        for seed in range(SONGS):
            mix = make_song(seed, SONG_SECONDS).mix.astype(np.float64)
            songs.append((mix * (TRACK_PEAK / np.abs(mix).max())).astype(np.float32).T)  # max exactly TRACK_PEAK
        np.save(cache, np.stack(songs))
    total, done, index = int(round(seconds * SR)), 0, 0
    with sf.SoundFile(str(path), "w", SR, 2, subtype="FLOAT") as out:
        while done < total:
            block = songs[index % SONGS][: total - done]
            out.write(block)
            done, index = done + len(block), index + 1
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uvr-data", type=Path, default=UVR_DATA, help="folder with UVR's download_checks.json")
    sub = parser.add_subparsers(dest="what", required=True)
    mdx = sub.add_parser("mdx")
    mdx.add_argument("folder", type=Path)
    mdx.add_argument("--size", default="full", choices=["full", "tiny"])
    roformer = sub.add_parser("roformer")
    roformer.add_argument("folder", type=Path)
    roformer.add_argument("--config", type=Path, required=True)
    roformer.add_argument("--reduced", action="store_true", help="REDUCED transformer sizes (the RSS leg)")
    track = sub.add_parser("track")
    track.add_argument("path", type=Path)
    track.add_argument("seconds", type=float)
    args = parser.parse_args()
    if args.what == "mdx":
        write_mdx_folder(args.folder, args.size, args.uvr_data)
    elif args.what == "roformer":
        write_roformer_folder(args.folder, args.config, args.reduced, args.uvr_data)
    else:
        write_track(args.path, args.seconds)


if __name__ == "__main__":
    main()
