"""The pinned `musicsep separate` interface, run as users run it: the CLI in a subprocess
(`python -m musicsep.cli`, the same entry point as the console script, so no PATH is needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf


def _musicsep(*args, env_extra=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "musicsep.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(tiny_model_repo):
    return {
        "MUSICSEP_MODEL_REPO": str(tiny_model_repo),
        "MUSICSEP_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "MUSICSEP_FALLBACK": "none",
    }


def test_layout_json_and_progress(cli_env, make_clip, tmp_path):
    first, second = make_clip(seconds=3.0), make_clip(seconds=2.0, suffix=".flac")
    out = _musicsep(
        "separate", first, second, "-m", "tiny_htdemucs", "-o", tmp_path / "sep", "--json", env_extra=cli_env
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["input"] for line in lines] == [str(first), str(second)]
    for line, clip in zip(lines, (first, second), strict=True):
        folder = tmp_path / "sep" / "tiny_htdemucs" / clip.stem
        assert line["stems"] == {s: str(folder / f"{s}.wav") for s in ("drums", "bass", "other", "vocals")}
        assert line["model"] == "tiny_htdemucs" and line["samplerate"] == 44100
        assert set(line["timings"]) >= {"decode_s", "separate_s", "encode_s", "total_s"}
        info = sf.info(line["stems"]["vocals"])
        assert info.frames == sf.info(str(clip)).frames and info.subtype == "PCM_16"


def test_two_stems_and_format(cli_env, make_clip, tmp_path):
    clip = make_clip(seconds=2.0)
    out = _musicsep(
        "separate",
        clip,
        "-m",
        "tiny_hdemucs",
        "-o",
        tmp_path,
        "--two-stems",
        "vocals",
        "--format",
        "flac",
        env_extra=cli_env,
    )
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "tiny_hdemucs" / clip.stem
    assert sorted(p.name for p in folder.iterdir()) == ["no_vocals.flac", "vocals.flac"]
    assert "100%" in out.stderr  # the progress bar reached the end


def test_bad_input_exits_3_and_other_files_still_run(cli_env, make_clip, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    good = make_clip(seconds=1.5)
    out = _musicsep(
        "separate",
        text,
        empty,
        tmp_path / "missing.mp3",
        good,
        "-m",
        "tiny_hdemucs",
        "-o",
        tmp_path / "o",
        "--json",
        env_extra=cli_env,
    )
    assert out.returncode == 3
    assert [json.loads(line)["input"] for line in out.stdout.splitlines()] == [str(good)]
    for name in ("notes.txt", "empty.wav", "missing.mp3"):
        assert name in out.stderr
    assert "Traceback" not in out.stderr


def test_model_unavailable_exits_4_without_fallback(cli_env, make_clip):
    out = _musicsep("separate", make_clip(seconds=1.0), "-m", "htdemucs_ft", env_extra=cli_env)
    assert out.returncode == 4
    assert "musicsep models pull htdemucs_ft" in out.stderr


def test_missing_weights_fall_back_to_dsp_say_so_and_write_under_the_model_that_ran(cli_env, make_clip, tmp_path):
    env = {**cli_env, "MUSICSEP_FALLBACK": "htdemucs,dsp"}
    clip = make_clip(seconds=2.0)
    out = _musicsep("separate", clip, "-m", "htdemucs_ft", "-o", tmp_path / "sep", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["model"] == "dsp" and line["requested_model"] == "htdemucs_ft"
    assert "used 'dsp' instead" in line["fallback_reason"]
    assert out.stderr.count("musicsep models pull htdemucs_ft") == 1  # said once, plainly
    assert line["stems"] == {s: str(tmp_path / "sep" / "dsp" / clip.stem / f"{s}.wav") for s in line["stems"]}
    assert set(line["stems"]) == {"drums", "bass", "other", "vocals"}
    assert sorted(p.name for p in (tmp_path / "sep").iterdir()) == ["dsp"]


def test_inputs_of_one_name_in_different_folders_do_not_overwrite_each_other(cli_env, make_clip, tmp_path):
    inputs = []
    for folder, seconds in (("a", 1.0), ("b", 1.5)):
        (tmp_path / folder).mkdir()
        inputs.append(make_clip(seconds=seconds).rename(tmp_path / folder / "mixture.wav"))
    out = _musicsep("separate", *inputs, "-m", "tiny_hdemucs", "-o", tmp_path / "sep", "--json", env_extra=cli_env)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    folders = [tmp_path / "sep" / "tiny_hdemucs" / name for name in ("mixture", "mixture (2)")]
    assert [line["stems"]["vocals"] for line in lines] == [str(folder / "vocals.wav") for folder in folders]
    for source, folder in zip(inputs, folders, strict=True):
        assert sf.info(str(folder / "vocals.wav")).frames == sf.info(str(source)).frames


def test_without_json_each_file_says_where_its_stems_went(cli_env, make_clip, tmp_path):
    clip = make_clip(seconds=1.0)
    out = _musicsep("separate", clip, "-m", "tiny_hdemucs", "-o", tmp_path, "--stems", "vocals", env_extra=cli_env)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "tiny_hdemucs" / clip.stem
    assert out.stdout == f"{clip}: vocals in {folder}{os.sep}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--stems", "vocals", "--two-stems", "vocals"],
        ["--stems", "guitar"],
        ["--format", "aac"],
        [],
    ],
)
def test_usage_errors_exit_2(cli_env, make_clip, args):
    clip = [make_clip(seconds=1.0)] if args else []
    out = _musicsep("separate", *clip, "-m", "tiny_hdemucs", *args, env_extra=cli_env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr


def test_ensemble_of_two_models(cli_env, make_clip, tmp_path):
    clip = make_clip(seconds=2.0)
    out = _musicsep(
        "separate",
        clip,
        "--ensemble",
        "tiny_htdemucs,tiny_hdemucs",
        "--ensemble-method",
        "median_wave",
        "--stems",
        "vocals",
        "-o",
        tmp_path,
        "--json",
        env_extra=cli_env,
    )
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["model"] == line["requested_model"] == "tiny_htdemucs+tiny_hdemucs"
    assert line["stems"] == {"vocals": str(tmp_path / "tiny_htdemucs+tiny_hdemucs" / clip.stem / "vocals.wav")}


@pytest.mark.parametrize(
    "args",
    [
        ["--ensemble", "tiny_htdemucs"],
        ["--ensemble", "tiny_htdemucs,tiny_hdemucs", "--ensemble-weights", "1,x"],
        ["--ensemble", "tiny_htdemucs,tiny_hdemucs", "--ensemble-weights", "1,2,3"],
        ["--ensemble", "tiny_htdemucs,tiny_hdemucs", "--ensemble-method", "max_spec", "--ensemble-weights", "1,2"],
        ["--ensemble-weights", "1,2"],
    ],
)
def test_bad_ensembles_exit_2(cli_env, make_clip, args):
    out = _musicsep("separate", make_clip(seconds=1.0), *args, env_extra=cli_env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "files,model",
    [
        ({"UVR-MDX-NET-Inst_HQ_4.onnx": b"\x08\x07truncated"}, "UVR-MDX-NET-Inst_HQ_4"),
        ({"someones_model.onnx": b"\x08\x07unknown"}, "someones_model"),
        ({"my_model.ckpt": b"PK\x03\x04cut", "my_model.yaml": b"audio: {chunk_size: 1}\n"}, "my_model"),
        (
            {"MelBandRoformer.ckpt": b"PK\x03\x04cut", "config_vocals_mel_band_roformer_kim.yaml": b"not: [a config"},
            "mel_band_roformer_kim",
        ),
    ],
)
def test_bad_model_files_exit_4(make_clip, tmp_path, files, model):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, payload in files.items():
        (repo / name).write_bytes(payload)
    env = {
        "MUSICSEP_MODEL_REPO": str(repo),
        "MUSICSEP_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "MUSICSEP_FALLBACK": "none",
    }
    out = _musicsep("separate", make_clip(seconds=1.0), "-m", model, "-o", tmp_path / "out", env_extra=env)
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr and str(repo) not in out.stderr
